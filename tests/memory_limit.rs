//! `--memory-limit`: a query whose working set is larger than the limit spills to disk and gives
//! the same answer as an unlimited run.

mod common;

use common::{ebiq_ok as ebiq, scratch};

const SORT: &str = "SELECT opa_ident, der_provider_code, der_procedure_all FROM opa \
                    ORDER BY der_procedure_all, der_diagnosis_all, opa_ident";

/// The sum of every `spill_count=N` in an EXPLAIN ANALYZE.
fn spills(explain: &str) -> u64 {
    explain
        .split("spill_count=")
        .skip(1)
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u64>().ok()
        })
        .sum()
}

#[test]
fn a_limited_run_spills_and_answers_as_an_unlimited_one() {
    let dir = scratch("memory");
    let data = dir.join("data");
    let data = data.to_str().expect("a UTF-8 path");
    // 300,000 outpatient rows: the sort below holds about 50 MB, against a 32 MB limit.
    ebiq(&[
        "generate", "--quiet", "--rows", "300000", "--seed", "5", "--out", data,
    ]);
    let limited = ["--data", data, "--memory-limit", "32M"];

    let explain = format!("EXPLAIN ANALYZE {SORT}");
    let plan = ebiq(&[&["sql", "--format", "csv", &explain][..], &limited[..]].concat());
    assert!(
        spills(&String::from_utf8_lossy(&plan.stdout)) > 0,
        "the limited sort did not spill"
    );
    let plan = ebiq(&["sql", "--format", "csv", "--data", data, &explain]);
    assert_eq!(spills(&String::from_utf8_lossy(&plan.stdout)), 0);

    let (free, bounded) = (dir.join("free.csv"), dir.join("bounded.csv"));
    ebiq(&[
        "sql",
        "--data",
        data,
        "--out",
        free.to_str().expect("a UTF-8 path"),
        SORT,
    ]);
    ebiq(
        &[
            &[
                "sql",
                "--out",
                bounded.to_str().expect("a UTF-8 path"),
                SORT,
            ][..],
            &limited[..],
        ]
        .concat(),
    );
    let expected = std::fs::read(&free).expect("a readable file");
    assert_eq!(expected.iter().filter(|&&b| b == b'\n').count(), 300_001);
    assert!(
        expected == std::fs::read(&bounded).expect("a readable file"),
        "the limited sort differs"
    );

    let (free, bounded) = (dir.join("free"), dir.join("bounded"));
    ebiq(&[
        "report",
        "--quiet",
        "--data",
        data,
        "--out",
        free.to_str().expect("a UTF-8 path"),
    ]);
    ebiq(
        &[
            &[
                "report",
                "--quiet",
                "--out",
                bounded.to_str().expect("a UTF-8 path"),
            ][..],
            &limited[..],
        ]
        .concat(),
    );
    let mut names: Vec<_> = std::fs::read_dir(&free)
        .expect("a listable folder")
        .map(|entry| entry.expect("a folder entry").file_name())
        .filter(|name| name.to_string_lossy().ends_with(".csv"))
        .collect();
    names.sort();
    // One CSV per report query; the manifests differ only in times and the command line.
    assert_eq!(names.len(), common::report_queries().len());
    for name in names {
        assert_eq!(
            std::fs::read(free.join(&name)).expect("a readable file"),
            std::fs::read(bounded.join(&name)).expect("a readable file"),
            "{name:?} differs under the limit"
        );
    }
}
