//! `ebiq explain` and the shell's `\why` through the binary, on sample records of each kind: one
//! flagged, one excluded, one whose ages are both NULL.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{binary, ebiq, ebiq_ok, project, stderr};

const ARGUMENTS: &str = "der_procedure_all, age_at_start_of_episode_sus, \
    der_age_at_cds_activity_date, der_diagnosis_all, administrative_category";

/// The smallest `opa_ident` of a sample record meeting `condition`.
fn first_ident(condition: &str) -> String {
    let sql = format!("SELECT min(opa_ident) AS id FROM opa WHERE {condition}");
    let out = ebiq_ok(&["sql", "--format", "csv", &sql]);
    let text = String::from_utf8(out.stdout).expect("UTF-8 output");
    let id = text
        .lines()
        .nth(1)
        .expect("the line or field asked for")
        .to_owned();
    assert!(!id.is_empty(), "no sample record has {condition}");
    id
}

/// One flagged, one excluded and one NULL-age record, picked by SQL independent of the explain
/// function: the rule function's flag, the inclusion with a cancer diagnosis, and the ages.
fn sample_records() -> [(String, &'static str); 3] {
    let flagged = first_ident(&format!("ebi_lower_back_imaging({ARGUMENTS}) IS NOT NULL"));
    let excluded = first_ident(
        "ebi_lower_back_imaging_included(der_procedure_all, age_at_start_of_episode_sus, \
         der_age_at_cds_activity_date) AND tsql_like(der_diagnosis_all, '%C[0-9][0-9]%')",
    );
    let null_age = first_ident(
        "ebi_lower_back_imaging_included_by_der_procedure_all(der_procedure_all) \
         AND age_at_start_of_episode_sus IS NULL AND der_age_at_cds_activity_date IS NULL",
    );
    [
        (flagged, "flagged"),
        (excluded, "excluded"),
        (null_age, "inclusion unknown"),
    ]
}

#[test]
fn explain_says_why_each_kind_of_record_is_or_is_not_flagged() {
    let records = sample_records();
    let ids: Vec<&str> = records.iter().map(|(id, _)| id.as_str()).collect();
    let condition = format!("opa_ident IN ({})", ids.join(", "));
    let out = ebiq_ok(&["explain", "--format", "csv", "--where", &condition]);
    let text = String::from_utf8(out.stdout).expect("UTF-8 output");
    let mut lines = text.lines();
    assert_eq!(
        lines.next().expect("one more line or item"),
        "opa_ident,rule,outcome,flag,inclusion_matched,age,age_from,exclusions_fired,\
         exclusions_unknown,null_mode"
    );
    let rows: Vec<Vec<&str>> = lines.map(|line| split_csv(line)).collect();
    assert_eq!(rows.len(), 3, "{text}");
    for (id, outcome) in &records {
        let row = rows
            .iter()
            .find(|r| r[0] == id)
            .expect("the item is present");
        assert_eq!(row[1], "lower_back_imaging");
        assert_eq!(row[2], *outcome, "{id}: {text}");
        match *outcome {
            "flagged" => {
                assert_eq!(row[3], "2S_lower_back_imaging");
                assert!(row[4].contains("Der_Procedure_All LIKE"), "{text}");
                assert!(!row[5].is_empty() && !row[6].is_empty(), "{text}");
            }
            "excluded" => {
                assert_eq!(row[3], "");
                assert!(row[7].contains("LIKE '%C[0-9][0-9]%'"), "{text}");
            }
            _ => {
                assert_eq!(row[5], "", "no age: {text}");
                assert_eq!(row[6], "", "no column gave one: {text}");
            }
        }
        assert_eq!(row[9], "intended");
    }

    let strict = ebiq_ok(&[
        "explain",
        "--format",
        "csv",
        "--null-mode",
        "strict_tsql",
        "--where",
        &condition,
    ]);
    assert!(
        String::from_utf8(strict.stdout)
            .expect("UTF-8 output")
            .contains(",strict_tsql")
    );
}

/// Splits a CSV line of fields that are quoted only when they hold a comma.
fn split_csv(line: &str) -> Vec<&str> {
    let mut fields = Vec::new();
    let mut rest = line;
    loop {
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').expect("the item is present");
            fields.push(&quoted[..end]);
            rest = &quoted[end + 1..];
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            fields.push(&rest[..end]);
            rest = &rest[end..];
        }
        match rest.strip_prefix(',') {
            Some(next) => rest = next,
            None => return fields,
        }
    }
}

#[test]
fn why_in_the_shell_explains_the_records_a_condition_picks() {
    let [(flagged, _), ..] = sample_records();
    let mut child = Command::new(binary())
        .args(["shell", "--no-history", "--format", "csv"])
        .current_dir(project())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the process starts");
    let script = format!("\\why opa_ident = {flagged}\n\\why\n\\whyever\n");
    child
        .stdin
        .take()
        .expect("a piped stream")
        .write_all(script.as_bytes())
        .expect("a writable pipe");
    let output = child.wait_with_output().expect("the process ends");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains(&format!(
            "{flagged},lower_back_imaging,flagged,2S_lower_back_imaging"
        )),
        "{text}"
    );
    assert!(
        stderr(&output).contains("\\why takes a condition"),
        "{}",
        stderr(&output)
    );
    assert!(
        stderr(&output).contains("unknown command '\\whyever'"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_condition_that_is_not_sql_is_refused_with_the_condition_named() {
    let output = ebiq(&["explain", "--where", "opa_ident ==== 3"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("opa_ident ==== 3"),
        "{}",
        stderr(&output)
    );
}
