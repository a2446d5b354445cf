//! A Delta table written by the test (the sample's first year as version 0, the rest appended as
//! version 1) read through the binary: each version gives the answers the flat sample gives for
//! the same months, and the manifest names the version read.

mod common;

use std::path::Path;

use common::{ebiq, ebiq_ok, project, scratch, stderr};
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext, ident, lit};
use deltalake::DeltaTable;
use deltalake::protocol::SaveMode;

/// The sample's outpatient rows with `Der_Activity_Month` up to and including this month become
/// version 0; the rest version 1.
const FIRST_VERSION_TO: &str = "202403";

/// Writes the sample's `opa` as a Delta table at `<dir>/opa` in two commits.
async fn write_delta_opa(dir: &Path) {
    let table = dir.join("opa");
    std::fs::create_dir_all(&table).expect("a scratch folder");
    // Plain Utf8 rather than DataFusion's Utf8View, the string type a Delta schema maps to.
    let config = SessionConfig::new().set_bool(
        "datafusion.execution.parquet.schema_force_view_types",
        false,
    );
    let ctx = SessionContext::new_with_config(config);
    let sample = project().join("data-samples/opa");
    let opa = ctx
        .read_parquet(
            sample.to_str().expect("a UTF-8 path"),
            ParquetReadOptions::default(),
        )
        .await
        .expect("the future succeeds");
    let early = ident("Der_Activity_Month").lt_eq(lit(FIRST_VERSION_TO));
    let url = url::Url::from_directory_path(&table).expect("an absolute folder");
    for (version, rows, mode) in [
        (
            0,
            opa.clone().filter(early.clone()),
            SaveMode::ErrorIfExists,
        ),
        (1, opa.filter(!early), SaveMode::Append),
    ] {
        let batches = rows
            .expect("readable rows")
            .collect()
            .await
            .expect("the future succeeds");
        let written = DeltaTable::try_from_url(url.clone())
            .await
            .expect("the future succeeds")
            .write(batches)
            .with_save_mode(mode)
            .await
            .expect("the future succeeds");
        assert_eq!(written.version(), Some(version));
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).expect("a readable text file")
}

/// Runs the report into `out` with `args`; returns its manifest.
fn report(out: &Path, args: &[&str]) -> serde_json::Value {
    let base = ["report", "--quiet", "--format", "csv", "--out"];
    let output = ebiq_ok(&[&base[..], &[out.to_str().expect("a UTF-8 path")], args].concat());
    assert!(stderr(&output).contains("wrote"), "{}", stderr(&output));
    serde_json::from_str(&read(&out.join("manifest.json"))).expect("valid JSON")
}

/// The count queries (01-05): their answers depend on the rows and the month range alone.
fn assert_same_counts(delta_out: &Path, flat_out: &Path) {
    let mut compared = 0;
    for entry in std::fs::read_dir(flat_out).expect("a listable folder") {
        let name = entry.expect("a folder entry").file_name();
        let text = name.to_string_lossy();
        if text.ends_with(".csv") && text[..2] <= *"05" {
            assert_eq!(
                read(&delta_out.join(&name)),
                read(&flat_out.join(&name)),
                "{text}"
            );
            compared += 1;
        }
    }
    assert_eq!(compared, 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn each_version_of_a_delta_table_answers_as_its_rows_do() {
    let dir = scratch("delta");
    write_delta_opa(&dir).await;
    let data = dir.to_str().expect("a UTF-8 path");

    let v0 = report(&dir.join("v0"), &["--data", data, "--as-of", "0"]);
    let v1 = report(&dir.join("v1"), &["--data", data, "--as-of", "1"]);
    let newest = report(&dir.join("newest"), &["--data", data]);
    for (manifest, version) in [(&v0, 0), (&v1, 1), (&newest, 1)] {
        assert_eq!(manifest["delta_tables"][0]["table"], "opa");
        assert_eq!(manifest["delta_tables"][0]["version"], version);
    }
    assert_ne!(v0["rows_flagged"], v1["rows_flagged"]);

    // Version 0 holds the months to FIRST_VERSION_TO; version 1 all of them.
    let flat_early = dir.join("flat-early");
    report(&flat_early, &["--to", "2024-03"]);
    assert_same_counts(&dir.join("v0"), &flat_early);
    let flat_all = dir.join("flat-all");
    report(&flat_all, &[]);
    assert_same_counts(&dir.join("v1"), &flat_all);
    assert_same_counts(&dir.join("newest"), &flat_all);

    // The HTML page says which version it counted.
    let page_dir = dir.join("page");
    let page_out = page_dir.to_str().expect("a UTF-8 path");
    ebiq_ok(&[
        "report", "--quiet", "--format", "html", "--out", page_out, "--data", data, "--as-of", "0",
    ]);
    let page = read(&page_dir.join("report.html"));
    assert!(
        page.contains("opa Delta version 0"),
        "the page names the version"
    );

    // The manifest lists the data files of the version read: version 1 adds to version 0's.
    let files = |m: &serde_json::Value| m["inputs"].as_array().expect("a JSON array").len();
    assert!(files(&v1) > files(&v0), "{v0} {v1}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_the_table_does_not_have_is_refused_by_name() {
    let dir = scratch("delta-missing-version");
    write_delta_opa(&dir).await;
    let output = ebiq(&[
        "sql",
        "--data",
        dir.to_str().expect("a UTF-8 path"),
        "--as-of",
        "7",
        "SELECT 1",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let said = stderr(&output);
    assert!(
        said.contains("opa Delta table") && said.contains("as of version 7"),
        "{said}"
    );
}

#[test]
fn as_of_on_parquet_files_is_refused() {
    let output = ebiq(&["sql", "--as-of", "0", "SELECT 1"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("not one (it has no _delta_log"),
        "{}",
        stderr(&output)
    );
}
