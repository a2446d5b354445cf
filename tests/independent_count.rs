//! The report's provider-by-month counts, checked by a second route: the sample's Parquet files
//! read row by row and the published rule applied by hand-written Rust that shares no code with the
//! rule engine (no LIKE compiler, no rule file, no SQL).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::process::Command;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int32Type;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

fn project() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Does `text` contain a 3-character window that `test` accepts?
fn any_window(text: &[u8], width: usize, test: impl Fn(&[u8]) -> bool) -> bool {
    text.windows(width).any(test)
}

fn contains(text: &[u8], code: &str) -> bool {
    any_window(text, code.len(), |w| w == code.as_bytes())
}

/// The published "Low back pain imaging" rule, written out by hand, intended NULL reading.
fn flagged(
    procedures: Option<&str>,
    age_at_start: Option<i32>,
    age_at_activity: Option<i32>,
    diagnoses: Option<&str>,
    admin_category: Option<&str>,
) -> bool {
    let Some(procedures) = procedures else {
        return false;
    };
    let procedures = procedures.to_ascii_uppercase();
    let p = procedures.as_bytes();
    let spine = contains(p, "U054") || contains(p, "U055");
    let bone_or_nec = [
        "U132", "U133", "U135", "U136", "U211", "U212", "U216", "U217",
    ]
    .iter()
    .any(|code| contains(p, code));
    let site = contains(p, "Z665") || contains(p, "O162");
    let included = spine || (bone_or_nec && site);
    let adult = age_at_start
        .or(age_at_activity)
        .is_some_and(|age| (19..=120).contains(&age));
    let cancer = diagnoses.is_some_and(|d| {
        let d = d.to_ascii_uppercase();
        let d = d.as_bytes();
        any_window(d, 3, |w| {
            w[0] == b'C' && w[1].is_ascii_digit() && w[2].is_ascii_digit()
        }) || contains(d, "D0")
            || any_window(d, 3, |w| w.starts_with(b"D3") && b"789".contains(&w[2]))
            || any_window(d, 3, |w| {
                w.starts_with(b"D4") && (b'0'..=b'8').contains(&w[2])
            })
    });
    let private = admin_category.is_some_and(|c| c.trim_end() == "02");
    included && adult && !cancer && !private
}

fn provider(code: &str) -> String {
    if code.len() == 5 && code.ends_with("00") {
        code[..3].to_owned()
    } else {
        code.to_owned()
    }
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> &'a dyn Array {
    batch.column_by_name(name).unwrap().as_ref()
}

fn text(array: &dyn Array, row: usize) -> Option<&str> {
    let strings = array.as_string::<i32>();
    strings.is_valid(row).then(|| strings.value(row))
}

fn number(array: &dyn Array, row: usize) -> Option<i32> {
    let numbers = array.as_primitive::<Int32Type>();
    numbers.is_valid(row).then(|| numbers.value(row))
}

fn counts_by_hand(opa: &Path) -> BTreeMap<(String, String), u64> {
    let mut counts = BTreeMap::new();
    let mut files: Vec<_> = std::fs::read_dir(opa)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in files {
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let c = |name| column(&batch, name);
            for row in 0..batch.num_rows() {
                if flagged(
                    text(c("Der_Procedure_All"), row),
                    number(c("Age_at_Start_of_Episode_SUS"), row),
                    number(c("Der_Age_at_CDS_Activity_Date"), row),
                    text(c("Der_Diagnosis_All"), row),
                    text(c("Administrative_Category"), row),
                ) {
                    let key = (
                        provider(text(c("Der_Provider_Code"), row).unwrap()),
                        text(c("Der_Activity_Month"), row).unwrap().to_owned(),
                    );
                    *counts.entry(key).or_default() += 1;
                }
            }
        }
    }
    counts
}

fn counts_from_report_csv(csv: &str) -> BTreeMap<(String, String), u64> {
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("provider,month,flagged"));
    lines
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            (
                (fields[0].to_owned(), fields[1].to_owned()),
                fields[2].parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn report_counts_equal_a_row_by_row_recount() {
    let out = std::env::temp_dir().join(format!("ebiq-independent-{}", std::process::id()));
    let status = Command::new(env!("CARGO_BIN_EXE_ebiq"))
        .args(["report", "--quiet", "--format", "csv", "--out"])
        .arg(&out)
        .arg("--data")
        .arg(project().join("data-samples"))
        .arg("--queries")
        .arg(project().join("queries"))
        .status()
        .unwrap();
    assert!(status.success());
    let csv = std::fs::read_to_string(out.join("01_flagged_by_provider_month.csv")).unwrap();
    std::fs::remove_dir_all(&out).unwrap();
    let reported = counts_from_report_csv(&csv);
    let recounted = counts_by_hand(&project().join("data-samples/opa"));
    let total: u64 = recounted.values().sum();
    assert!(
        total > 500,
        "the sample should flag hundreds of records, got {total}"
    );
    assert_eq!(reported, recounted);
}
