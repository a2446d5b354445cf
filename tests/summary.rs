//! The run summary's counts (rows in the month range, invalid months, unknown and impossible
//! ages) against the same counts made row by row in plain SQL, with neither `sus_month` nor
//! `coalesce`, over a dataset seeded with every kind of odd value.

mod common;

use std::path::{Path, PathBuf};

use common::{ebiq_ok, scratch};

/// The sample's outpatient rows with months that are not yyyymm (and NULL), and ages that are
/// unknown (999), impossible (150, -1, 7010) or infants' (7003), in either age column.
const ODD_VALUES: &str = "SELECT * REPLACE ( \
    CASE opa_ident % 50 WHEN 0 THEN '202413' WHEN 1 THEN NULL WHEN 2 THEN '2024-5' \
         WHEN 3 THEN ' 202404' ELSE der_activity_month END AS der_activity_month, \
    CASE WHEN opa_ident % 7 = 0 THEN NULL WHEN opa_ident % 11 = 0 THEN 999 \
         WHEN opa_ident % 13 = 0 THEN 150 WHEN opa_ident % 17 = 0 THEN 7003 \
         WHEN opa_ident % 19 = 0 THEN -1 ELSE age_at_start_of_episode_sus END \
         AS age_at_start_of_episode_sus, \
    CASE WHEN opa_ident % 23 = 0 THEN 999 WHEN opa_ident % 29 = 0 THEN 7010 \
         ELSE der_age_at_cds_activity_date END AS der_age_at_cds_activity_date) \
    FROM opa";

/// The four counts, row by row: `first` and `last` are yyyymm text.
fn row_by_row(data: &Path, first: &str, last: &str) -> Vec<u64> {
    let age = "CASE WHEN age_at_start_of_episode_sus IS NOT NULL \
               THEN age_at_start_of_episode_sus ELSE der_age_at_cds_activity_date END";
    let valid = "der_activity_month ~ '^[0-9]{4}(0[1-9]|1[0-2])$'";
    let in_range =
        format!("{valid} AND der_activity_month >= '{first}' AND der_activity_month <= '{last}'");
    let sql = format!(
        "SELECT count(*) FILTER (WHERE {in_range}), \
                count(*) FILTER (WHERE der_activity_month IS NULL OR NOT ({valid})), \
                count(*) FILTER (WHERE {in_range} AND {age} = 999), \
                count(*) FILTER (WHERE {in_range} AND ({age} < 0 OR {age} > 130) AND {age} <> 999 \
                                 AND ({age} < 7001 OR {age} > 7007)) \
         FROM opa"
    );
    let counts = first_row(data, &sql);
    assert!(
        counts.iter().all(|&n| n > 0),
        "every kind should occur: {counts:?}"
    );
    counts
}

/// The numbers in the first row `sql` returns over `data`.
fn first_row(data: &Path, sql: &str) -> Vec<u64> {
    let output = ebiq_ok(&[
        "sql",
        "--data",
        data.to_str().expect("a UTF-8 path"),
        "--format",
        "csv",
        sql,
    ]);
    String::from_utf8(output.stdout)
        .expect("UTF-8 output")
        .lines()
        .nth(1)
        .expect("the line or field asked for")
        .split(',')
        .map(|n| n.parse().expect("a number"))
        .collect()
}

/// A dataset under `dir` whose one `opa` file holds [`ODD_VALUES`] in the row order `order_by`
/// gives (empty: the sample's order); returns its folder.
fn odd_values_dataset(dir: &Path, order_by: &str) -> PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(data.join("opa")).expect("a scratch folder");
    let copy = format!(
        "COPY ({ODD_VALUES} {order_by}) TO '{}'",
        data.join("opa/odd.parquet").display()
    );
    ebiq_ok(&["sql", "--format", "csv", &copy]);
    data
}

/// The same four counts from the manifest of `ebiq report` running `query` (a file of queries/
/// or SQL text) with `range` arguments, and the query whose scan counted them (if one did).
fn from_report(data: &Path, out: &Path, query: &str, range: &[&str]) -> (Vec<u64>, Option<String>) {
    let queries = out.with_extension("queries");
    std::fs::create_dir_all(&queries).expect("a scratch folder");
    let shipped = common::project().join("queries").join(query);
    if shipped.exists() {
        std::fs::copy(&shipped, queries.join(query)).expect("a copyable file");
    } else {
        std::fs::write(queries.join("q.sql"), query).expect("a writable scratch file");
    }
    let mut args = vec![
        "report",
        "--quiet",
        "--data",
        data.to_str().expect("a UTF-8 path"),
        "--queries",
        queries.to_str().expect("a UTF-8 path"),
        "--out",
        out.to_str().expect("a UTF-8 path"),
    ];
    args.extend_from_slice(range);
    ebiq_ok(&args);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).expect("a readable file"))
            .expect("valid JSON");
    let quality = &manifest["data_quality"];
    let counts = [
        &manifest["rows_scanned"],
        &quality["invalid_activity_month"],
        &quality["unknown_age"],
        &quality["impossible_age"],
    ]
    .iter()
    .map(|value| value.as_u64().expect("a JSON number"))
    .collect();
    let counted_by = quality["counted_by_query"].as_str().map(str::to_owned);
    (counts, counted_by)
}

const MAIN: &str = "01_flagged_by_provider_month.sql";

#[test]
fn the_summary_counts_what_a_row_by_row_count_does() {
    let dir = scratch("summary");
    let data = odd_values_dataset(&dir, "");
    let everything = row_by_row(&data, "000000", "999999");
    let in_range = row_by_row(&data, "202404", "202409");
    let range = ["--from", "2024-04", "--to", "2024-09"];

    // The main query reads every row's month and ages: its scan counts the summary.
    let counted_by_main = Some("01_flagged_by_provider_month".to_owned());
    let (counts, by) = from_report(&data, &dir.join("all"), MAIN, &[]);
    assert_eq!(
        counts, everything,
        "rows, invalid months, unknown, impossible ages"
    );
    assert_eq!(by, counted_by_main);
    let (counts, by) = from_report(&data, &dir.join("range"), MAIN, &range);
    assert_eq!(counts, in_range, "--from 2024-04 --to 2024-09");
    assert_eq!(by, counted_by_main);

    // Both reads of a CTE come from the run's one scan, which reads every row and counts the
    // summary.
    let shared = "WITH kept AS (SELECT der_activity_month AS month, \
                  age_at_start_of_episode_sus AS start_age, der_age_at_cds_activity_date AS cds_age \
                  FROM opa WHERE length(der_activity_month) >= 0 OR der_activity_month IS NULL) \
                  SELECT (SELECT count(*) FROM kept) AS records, \
                  (SELECT count(*) FROM kept WHERE start_age IS NULL) AS no_start_age";
    let (counts, by) = from_report(&data, &dir.join("shared"), shared, &[]);
    assert_eq!(
        (counts, by),
        (everything.clone(), Some("q".to_owned())),
        "{shared}"
    );
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("shared/manifest.json")).expect("a readable file"),
    )
    .expect("valid JSON");
    let from_scan = manifest["queries"][0]["from_shared_scan"]
        .as_array()
        .expect("a JSON array");
    assert_eq!(from_scan.len(), 2, "{from_scan:?}");
    assert!(
        from_scan
            .iter()
            .all(|part| part["name"] == "q" && part["rows"] == 1)
    );

    // A query that reads no ages is served by the shared scan, which reads them for the summary.
    let no_ages = "SELECT count(*) AS flagged FROM opa WHERE der_activity_month = '202404'";
    let (counts, by) = from_report(&data, &dir.join("no-ages"), no_ages, &range);
    assert_eq!(
        (counts, by),
        (in_range.clone(), Some("q".to_owned())),
        "{no_ages}"
    );
    // One that stops after a few rows reads opa itself, and leaves the summary its own scan.
    let few_rows = "SELECT der_activity_month, age_at_start_of_episode_sus, \
                    der_age_at_cds_activity_date FROM opa LIMIT 3";
    let (counts, by) = from_report(&data, &dir.join("few-rows"), few_rows, &[]);
    assert_eq!((counts, by), (everything, None), "{few_rows}");
}

/// Rows of every month interleaved in one file (an extract ordered by patient or load time, not
/// by month): the summary still counts each month's rows as a row-by-row count does.
#[test]
fn the_summary_counts_rows_whose_months_are_interleaved() {
    let dir = scratch("summary-interleaved");
    let interleaved = "ORDER BY (opa_ident * 7919) % 1009, opa_ident";
    let data = odd_values_dataset(&dir, interleaved);
    let [changes] = first_row(
        &data,
        &format!(
            "SELECT count(*) FROM (SELECT der_activity_month, \
             lag(der_activity_month) OVER ({interleaved}) AS previous FROM opa) \
             WHERE der_activity_month IS DISTINCT FROM previous"
        ),
    )[..] else {
        panic!("one count expected")
    };
    assert!(
        changes > 1000,
        "the months should change often, not {changes} times"
    );
    let (counts, by) = from_report(&data, &dir.join("all"), MAIN, &[]);
    assert_eq!(counts, row_by_row(&data, "000000", "999999"));
    assert_eq!(by, Some("01_flagged_by_provider_month".to_owned()));
    let range = ["--from", "2024-04", "--to", "2024-09"];
    let (counts, _) = from_report(&data, &dir.join("range"), MAIN, &range);
    assert_eq!(counts, row_by_row(&data, "202404", "202409"));
}
