//! Hive-partitioned datasets through the binary: partition folders become typed columns, and a
//! month range reads only the months' folders, with the same answers as the flat sample.

mod common;

use std::path::Path;

use common::{ebiq_ok, project, report_queries, scratch, stderr};

/// The sample's `opa` written again under `<dir>/opa/` partitioned by `keys` (DataFusion's COPY
/// writes `key=value/` folders and leaves the keys out of the files), with the sample's
/// population beside it.
fn partitioned_sample(name: &str, select: &str, keys: &str) -> common::Scratch {
    let dir = scratch(name);
    let opa = dir.join("opa");
    std::fs::create_dir_all(&opa).expect("a scratch folder");
    let copy = format!(
        "COPY ({select}) TO '{}/' STORED AS PARQUET PARTITIONED BY ({keys})",
        opa.display()
    );
    ebiq_ok(&["sql", "--format", "csv", &copy]);
    copy_folder(
        &project().join("data-samples/population"),
        &dir.join("population"),
    );
    dir
}

fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("a scratch folder");
    for entry in std::fs::read_dir(from).expect("a listable folder") {
        let entry = entry.expect("a folder entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("a copyable file");
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).expect("a readable text file")
}

#[test]
fn a_month_range_reads_only_its_months_folders_and_answers_as_the_flat_files_do() {
    let dir = partitioned_sample("hive-month", "SELECT * FROM opa", "der_activity_month");
    let folders = std::fs::read_dir(dir.join("opa"))
        .expect("a listable folder")
        .count();
    assert_eq!(folders, 24, "one folder per sample month");

    let range = ["--from", "2024-04", "--to", "2024-06"];
    let partitioned_out = dir.join("out");
    let run = ebiq_ok(
        &[
            &["report", "--quiet", "--format", "csv"][..],
            &["--data", dir.to_str().expect("a UTF-8 path")],
            &["--out", partitioned_out.to_str().expect("a UTF-8 path")],
            &range,
        ]
        .concat(),
    );
    let said = stderr(&run);
    let population_files = std::fs::read_dir(dir.join("population"))
        .expect("a listable folder")
        .count();
    // Three months' folders (one file each) and the population, of 24 month files and it.
    assert!(
        said.contains(&format!(
            "read {} of {} files",
            3 + population_files,
            24 + population_files
        )),
        "{said}"
    );

    let manifest: serde_json::Value =
        serde_json::from_str(&read(&partitioned_out.join("manifest.json"))).expect("valid JSON");
    let read_months: Vec<&str> = manifest["inputs"]
        .as_array()
        .expect("a JSON array")
        .iter()
        .filter(|input| input["table"] == "opa" && input["read"] == true)
        .map(|input| input["path"].as_str().expect("a JSON string"))
        .collect();
    assert_eq!(read_months.len(), 3, "{read_months:?}");
    for (path, month) in read_months.iter().zip(["202404", "202405", "202406"]) {
        assert!(
            path.contains(&format!("der_activity_month={month}/")),
            "{path}"
        );
    }

    let flat_out = dir.join("flat");
    let flat = ebiq_ok(
        &[
            &["report", "--quiet", "--format", "csv"][..],
            &["--out", flat_out.to_str().expect("a UTF-8 path")],
            &range,
        ]
        .concat(),
    );
    // Monthly files without key=value folders: every opa file is in the plan (their row groups
    // are pruned inside), and apcs, which no query reads, is not counted against the run.
    assert!(
        !stderr(&flat).contains(" files (partition pruning"),
        "{}",
        stderr(&flat)
    );
    let mut compared = 0;
    for entry in std::fs::read_dir(&flat_out).expect("a listable folder") {
        let name = entry.expect("a folder entry").file_name();
        if !name.to_string_lossy().ends_with(".csv") {
            continue;
        }
        assert_eq!(
            read(&partitioned_out.join(&name)),
            read(&flat_out.join(&name)),
            "{name:?} differs between the partitioned and the flat dataset"
        );
        compared += 1;
    }
    assert_eq!(
        compared,
        report_queries().len(),
        "every report query ran on both"
    );
}

#[test]
fn partition_folders_are_columns_with_inferred_types() {
    let dir = partitioned_sample(
        "hive-year",
        "SELECT *, CAST(left(der_activity_month, 4) AS INT) AS year FROM opa",
        "year, der_activity_month",
    );
    let sql = "SELECT arrow_typeof(year) AS year_type, \
                      arrow_typeof(der_activity_month) AS month_type, \
                      count(DISTINCT year) AS years, count(*) AS n \
               FROM opa GROUP BY 1, 2";
    let out = ebiq_ok(&[
        "sql",
        "--format",
        "csv",
        "--data",
        dir.to_str().expect("a UTF-8 path"),
        sql,
    ]);
    let flat = ebiq_ok(&["sql", "--format", "csv", "SELECT count(*) AS n FROM opa"]);
    let total = String::from_utf8(flat.stdout).expect("UTF-8 output");
    let total = total.lines().nth(1).expect("the line or field asked for");
    assert_eq!(
        String::from_utf8(out.stdout).expect("UTF-8 output"),
        format!("year_type,month_type,years,n\nInt64,Utf8,3,{total}\n")
    );
}
