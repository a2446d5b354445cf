//! Bad datasets meet the real binary: each is refused with the file, column and problem named and
//! exit code 1, except a column missing from some files, which is read as NULL with a warning.

mod common;

use std::path::Path;

use common::{Scratch, ebiq};

const ALL_BUT_AGE: &str = "opa_ident, der_provider_code, der_provider_site_code, \
    der_commissioner_code, appointment_date, der_activity_month, der_age_at_cds_activity_date, \
    der_procedure_all, der_diagnosis_all, administrative_category, treatment_function_code, \
    attendance_status";

/// An empty dataset folder with an `opa/` table folder, unique to the test.
fn dataset(name: &str) -> Scratch {
    let dir = common::scratch(&format!("bad-{name}"));
    std::fs::create_dir_all(dir.join("opa")).expect("a scratch folder");
    dir
}

/// Writes `select` over the sample's `opa` to `file` with DataFusion's COPY.
fn write(file: &Path, select: &str) {
    let copy = format!("COPY ({select}) TO '{}'", file.display());
    let output = ebiq(&["sql", "--format", "csv", &copy]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs the report over `dir`; returns the exit code and stderr.
fn report(dir: &Path) -> (Option<i32>, String) {
    let output = ebiq(&[
        "report",
        "--quiet",
        "--data",
        dir.to_str().expect("a UTF-8 path"),
    ]);
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn assert_refused(dir: &Path, message: &str) {
    let (code, stderr) = report(dir);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(message),
        "expected '{message}' in: {stderr}"
    );
}

#[test]
fn a_missing_column_is_named_with_the_query_that_needs_it() {
    let dir = dataset("missing");
    write(
        &dir.join("opa/a.parquet"),
        "SELECT * EXCEPT (der_procedure_all) FROM opa",
    );
    let file = dir.join("opa/a.parquet").display().to_string();
    assert_refused(
        &dir,
        &format!(
            "01_flagged_by_provider_month.sql needs the column Der_Procedure_All (OPCS-4 codes, \
             comma-separated, first code first (U051,Z665)), which the dataset's files do not \
             have, such as {file}"
        ),
    );
}

/// A file written by another tool with only the columns the rule and the main report read: the
/// main report runs; a statement needing another column fails naming it and the statement.
#[test]
fn a_file_with_only_the_rule_s_columns_runs_the_main_report() {
    let dir = dataset("rule-columns");
    write(
        &dir.join("opa/a.parquet"),
        "SELECT der_provider_code, der_activity_month, der_procedure_all, \
         age_at_start_of_episode_sus, der_age_at_cds_activity_date, der_diagnosis_all, \
         administrative_category FROM opa",
    );
    let data = dir.to_str().expect("a UTF-8 path");
    let main =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("queries/01_flagged_by_provider_month.sql");
    let queries = dir.join("queries");
    std::fs::create_dir_all(&queries).expect("a scratch folder");
    std::fs::copy(&main, queries.join("01_flagged_by_provider_month.sql"))
        .expect("a copyable file");
    let output = ebiq(&[
        "report",
        "--quiet",
        "--format",
        "csv",
        "--data",
        data,
        "--queries",
        queries.to_str().expect("a UTF-8 path"),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("1 queries over 60000 outpatient rows, 2093 flagged"),
        "{stderr}"
    );
    let count = ebiq(&[
        "sql",
        "--format",
        "csv",
        "--data",
        data,
        "SELECT count(*) AS n FROM opa",
    ]);
    assert_eq!(String::from_utf8_lossy(&count.stdout), "n\n60000\n");
    let commissioner = ebiq(&[
        "sql",
        "--data",
        data,
        "SELECT count(DISTINCT der_commissioner_code) FROM opa",
    ]);
    assert_eq!(commissioner.status.code(), Some(1));
    let message = String::from_utf8_lossy(&commissioner.stderr);
    assert!(
        message.contains("the SQL, statement 1 (line 1) needs the column Der_Commissioner_Code (commissioner code)"),
        "{message}"
    );
}

#[test]
fn age_as_text_is_refused_naming_file_and_column() {
    let dir = dataset("age-text");
    let file = dir.join("opa/a.parquet");
    write(
        &file,
        &format!(
            "SELECT {ALL_BUT_AGE}, CAST(age_at_start_of_episode_sus AS VARCHAR) AS \
             age_at_start_of_episode_sus FROM opa"
        ),
    );
    assert_refused(
        &dir,
        &format!(
            "{}: column Age_at_Start_of_Episode_SUS is Utf8View, but ebiq expects an integer",
            file.display()
        ),
    );
}

#[test]
fn month_as_a_date_is_refused() {
    let dir = dataset("month-date");
    write(
        &dir.join("opa/a.parquet"),
        "SELECT * REPLACE (to_date(der_activity_month || '01', '%Y%m%d') AS der_activity_month) \
         FROM opa",
    );
    assert_refused(
        &dir,
        "column Der_Activity_Month is Date32, but ebiq expects text (activity month as yyyymm",
    );
}

#[test]
fn files_disagreeing_on_a_type_are_refused_naming_both() {
    let dir = dataset("conflict");
    write(
        &dir.join("opa/a.parquet"),
        "SELECT * FROM opa WHERE der_activity_month = '202404'",
    );
    write(
        &dir.join("opa/b.parquet"),
        &format!(
            "SELECT {ALL_BUT_AGE}, CAST(age_at_start_of_episode_sus AS BIGINT) AS \
             age_at_start_of_episode_sus FROM opa WHERE der_activity_month = '202405'"
        ),
    );
    let (code, stderr) = report(&dir);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("column Age_at_Start_of_Episode_SUS has conflicting types"));
    assert!(
        stderr.contains("Int32 in") && stderr.contains("Int64 in"),
        "{stderr}"
    );
    assert!(
        stderr.contains("a.parquet") && stderr.contains("b.parquet"),
        "{stderr}"
    );
}

#[test]
fn a_column_missing_from_some_files_is_read_as_null_with_a_warning() {
    let dir = dataset("partial");
    write(
        &dir.join("opa/a.parquet"),
        "SELECT * FROM opa WHERE der_activity_month = '202404'",
    );
    write(
        &dir.join("opa/b.parquet"),
        "SELECT * EXCEPT (treatment_function_code) FROM opa WHERE der_activity_month = '202405'",
    );
    let (code, stderr) = report(&dir);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "warning: column opa.Treatment_Function_Code is missing from 1 of 2 files (such as"
        ),
        "{stderr}"
    );
    let sample_months = ebiq(&[
        "sql",
        "--format",
        "csv",
        "SELECT count(*) AS n FROM opa WHERE der_activity_month IN ('202404', '202405')",
    ]);
    let expected = String::from_utf8(sample_months.stdout).expect("UTF-8 output");
    let n = expected
        .lines()
        .nth(1)
        .expect("the line or field asked for");
    assert!(
        stderr.contains(&format!("queries over {n} outpatient rows")),
        "{stderr}"
    );
}

#[test]
fn a_truncated_or_foreign_file_is_named() {
    let dir = dataset("truncated");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("data-samples/opa/opa_202404.parquet");
    let bytes = std::fs::read(sample).expect("a readable file");
    let file = dir.join("opa/opa_202404.parquet");
    std::fs::write(&file, &bytes[..bytes.len() / 2]).expect("a writable scratch file");
    assert_refused(
        &dir,
        &format!(
            "{} is not a readable Parquet file (truncated, or another format)",
            file.display()
        ),
    );

    let dir = dataset("csv");
    let file = dir.join("opa/opa_202404.parquet");
    std::fs::write(&file, "OPA_Ident,Der_Provider_Code\n1,RXH\n").expect("a writable scratch file");
    assert_refused(
        &dir,
        &format!("{} is not a readable Parquet file", file.display()),
    );
}

#[test]
fn an_empty_folder_is_refused() {
    let dir = dataset("empty");
    assert_refused(&dir, "the opa table has no Parquet files (*.parquet) at");
}

#[test]
fn a_report_query_with_an_sql_error_names_the_file_and_line() {
    let dir = dataset("queries");
    let queries = dir.join("queries");
    std::fs::create_dir_all(&queries).expect("a scratch folder");
    std::fs::write(
        queries.join("01_broken.sql"),
        "-- A query with a typo on its third line\nSELECT der_provider_code,\n  count(*) AS n FRM opa\n",
    )
    .expect("a writable scratch file");
    std::fs::write(
        queries.join("00_fine.sql"),
        "-- Runs, but must not be written while another query fails\nSELECT count(*) AS n FROM opa\n",
    )
    .expect("a writable scratch file");
    let out = queries.with_file_name("out");
    let output = ebiq(&[
        "report",
        "--quiet",
        "--queries",
        queries.to_str().expect("a UTF-8 path"),
        "--out",
        out.to_str().expect("a UTF-8 path"),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let file = queries.join("01_broken.sql");
    assert!(
        stderr.contains(&format!(
            "{}:3:17: Expected: end of statement, found: FRM",
            file.display()
        )),
        "{stderr}"
    );
    let written: Vec<_> = std::fs::read_dir(&out)
        .expect("a listable folder")
        .collect();
    assert!(written.is_empty(), "a failed run wrote {written:?}");
}

#[test]
fn records_with_an_invalid_month_are_never_counted_and_are_reported() {
    let dir = dataset("month-202413");
    write(
        &dir.join("opa/a.parquet"),
        "SELECT * REPLACE (CASE WHEN opa_ident % 10 = 0 THEN '202413' ELSE der_activity_month END \
         AS der_activity_month) FROM opa",
    );
    let expected = ebiq(&[
        "sql",
        "--format",
        "csv",
        "SELECT count(*) FILTER (WHERE opa_ident % 10 = 0) AS invalid, \
                count(*) FILTER (WHERE opa_ident % 10 <> 0 AND ebi_lower_back_imaging(\
                    der_procedure_all, age_at_start_of_episode_sus, der_age_at_cds_activity_date, \
                    der_diagnosis_all, administrative_category) IS NOT NULL) AS flagged \
         FROM opa",
    ]);
    let expected = String::from_utf8(expected.stdout).expect("UTF-8 output");
    let (invalid, flagged) = expected
        .lines()
        .nth(1)
        .expect("the line or field asked for")
        .split_once(',')
        .expect("a separated pair");
    let (code, stderr) = report(&dir);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(", {flagged} flagged")),
        "expected {flagged} flagged: {stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "data: {invalid} outpatient records with an invalid activity month (never counted)"
        )),
        "{stderr}"
    );
}
