//! The report's provider-by-month counts, checked by a second route: the sample's Parquet files
//! read row by row and the published rule applied by hand-written Rust that shares no code with the
//! rule engine (no LIKE compiler, no rule file, no SQL).

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::process::Command;

use common::CsvHeader;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Int32Type, Int64Type};
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
    batch
        .column_by_name(name)
        .expect("the column is in the result")
        .as_ref()
}

fn text(array: &dyn Array, row: usize) -> Option<&str> {
    let strings = array.as_string::<i32>();
    strings.is_valid(row).then(|| strings.value(row))
}

fn number(array: &dyn Array, row: usize) -> Option<i32> {
    let numbers = array.as_primitive::<Int32Type>();
    numbers.is_valid(row).then(|| numbers.value(row))
}

/// A flagged record, as the queries group it.
struct Flagged<'a> {
    provider: &'a str,
    commissioner: &'a str,
    month: &'a str,
    age: Option<i32>,
    sex: Option<&'a str>,
}

/// Calls `visit` with every record the rule flags, read straight from the Parquet files.
fn each_flagged(opa: &Path, mut visit: impl FnMut(&Flagged<'_>)) {
    let mut files: Vec<_> = std::fs::read_dir(opa)
        .expect("a listable folder")
        .map(|e| e.expect("a folder entry").path())
        .collect();
    files.sort();
    for path in files {
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(File::open(&path).expect("a readable file"))
                .expect("a valid batch")
                .build()
                .expect("a built value");
        for batch in reader {
            let batch = batch.expect("a readable batch");
            let c = |name| column(&batch, name);
            for row in 0..batch.num_rows() {
                let age_at_start = number(c("Age_at_Start_of_Episode_SUS"), row);
                let age_at_activity = number(c("Der_Age_at_CDS_Activity_Date"), row);
                if flagged(
                    text(c("Der_Procedure_All"), row),
                    age_at_start,
                    age_at_activity,
                    text(c("Der_Diagnosis_All"), row),
                    text(c("Administrative_Category"), row),
                ) {
                    visit(&Flagged {
                        provider: text(c("Der_Provider_Code"), row).expect("a text cell"),
                        commissioner: text(c("Der_Commissioner_Code"), row).expect("a text cell"),
                        month: text(c("Der_Activity_Month"), row).expect("a text cell"),
                        age: age_at_start.or(age_at_activity),
                        sex: text(c("Sex"), row),
                    });
                }
            }
        }
    }
}

fn counts_by_hand(opa: &Path) -> BTreeMap<(String, String), u64> {
    let mut counts = BTreeMap::new();
    each_flagged(opa, |record| {
        let key = (provider(record.provider), record.month.to_owned());
        *counts.entry(key).or_default() += 1;
    });
    counts
}

/// Runs the report over the sample as CSV; returns the named outputs' text.
fn report_csvs<const N: usize>(name: &str, outputs: [&str; N]) -> [String; N] {
    let out = std::env::temp_dir().join(format!("ebiq-independent-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let status = Command::new(env!("CARGO_BIN_EXE_ebiq"))
        .args(["report", "--quiet", "--format", "csv", "--out"])
        .arg(&out)
        .arg("--data")
        .arg(project().join("data-samples"))
        .arg("--queries")
        .arg(project().join("queries"))
        .status()
        .expect("the process runs");
    assert!(status.success());
    let texts = outputs.map(|output| {
        std::fs::read_to_string(out.join(format!("{output}.csv"))).expect("a readable text file")
    });
    std::fs::remove_dir_all(&out).expect("a removable scratch folder");
    texts
}

fn counts_from_report_csv(csv: &str) -> BTreeMap<(String, String), u64> {
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("provider,month,flagged"));
    lines
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            (
                (fields[0].to_owned(), fields[1].to_owned()),
                fields[2].parse().expect("a number"),
            )
        })
        .collect()
}

#[test]
fn report_counts_equal_a_row_by_row_recount() {
    let [csv] = report_csvs("counts", ["01_flagged_by_provider_month"]);
    let reported = counts_from_report_csv(&csv);
    let recounted = counts_by_hand(&project().join("data-samples/opa"));
    let total: u64 = recounted.values().sum();
    assert!(
        total > 500,
        "the sample should flag hundreds of records, got {total}"
    );
    assert_eq!(reported, recounted);
}

/// The 2013 European Standard Population, typed in again from Eurostat's table.
const ESP: [f64; 19] = [
    5000.0, 5500.0, 5500.0, 5500.0, 6000.0, 6000.0, 6500.0, 7000.0, 7000.0, 7000.0, 7000.0, 6500.0,
    6000.0, 5500.0, 5000.0, 4000.0, 2500.0, 1500.0, 1000.0,
];
const LABELS: [&str; 19] = [
    "0-4", "5-9", "10-14", "15-19", "20-24", "25-29", "30-34", "35-39", "40-44", "45-49", "50-54",
    "55-59", "60-64", "65-69", "70-74", "75-79", "80-84", "85-89", "90+",
];
const Z95: f64 = 1.959_963_984_540_054;

fn band_of(age: i32) -> Option<usize> {
    match age {
        0..=150 => Some((age as usize / 5).min(18)),
        7001..=7007 => Some(0),
        _ => None,
    }
}

/// Percentile by linear interpolation between order statistics (R's type 7).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let position = p * (sorted.len() - 1) as f64;
    let (low, high) = (position.floor() as usize, position.ceil() as usize);
    sorted[low] + (position - low as f64) * (sorted[high] - sorted[low])
}

/// One commissioner's rates by hand: events and populations per (sex, band).
fn dsr_by_hand(
    events: &BTreeMap<(String, usize), f64>,
    people: &BTreeMap<(String, usize), f64>,
) -> Option<[f64; 3]> {
    let (mut weighted, mut standard, mut squared, mut total) = (0.0, 0.0, 0.0, 0.0);
    for ((sex, band), n) in people {
        let o = events.get(&(sex.clone(), *band)).copied().unwrap_or(0.0);
        let w = ESP[*band];
        weighted += o * w / n;
        standard += w;
        squared += o * (w / n) * (w / n);
        total += o;
    }
    if total < 10.0 {
        return None;
    }
    let rate = weighted / standard * 1e5;
    let lower_o = total * (1.0 - 1.0 / (9.0 * total) - Z95 / (3.0 * total.sqrt())).powi(3);
    let upper_o = (total + 1.0)
        * (1.0 - 1.0 / (9.0 * (total + 1.0)) + Z95 / (3.0 * (total + 1.0).sqrt())).powi(3);
    let scale = (squared / standard / standard / total).sqrt() * 1e5;
    Some([
        rate,
        rate + scale * (lower_o - total),
        rate + scale * (upper_o - total),
    ])
}

#[test]
fn standardised_rates_equal_a_recomputation_by_hand() {
    let [rates_csv, headline_csv] = report_csvs(
        "dsr",
        ["06_standardised_rates_by_commissioner", "07_headline"],
    );

    // Events by commissioner, sex and band, and all flagged activity by commissioner.
    let mut events: BTreeMap<String, BTreeMap<(String, usize), f64>> = BTreeMap::new();
    let mut activity: BTreeMap<String, f64> = BTreeMap::new();
    each_flagged(&project().join("data-samples/opa"), |record| {
        *activity.entry(record.commissioner.to_owned()).or_default() += 1.0;
        if let (Some(band), Some(sex @ ("1" | "2"))) = (record.age.and_then(band_of), record.sex) {
            *events
                .entry(record.commissioner.to_owned())
                .or_default()
                .entry((sex.to_owned(), band))
                .or_default() += 1.0;
        }
    });
    // The latest population year (no --to: every year qualifies).
    let file = File::open(project().join("data-samples/population/population.parquet"))
        .expect("a readable file");
    let batches: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("a valid batch")
        .build()
        .expect("a built value")
        .map(Result::unwrap)
        .collect();
    let year = |b: &RecordBatch, row| {
        b.column_by_name("year")
            .expect("the column is in the result")
            .as_primitive::<Int32Type>()
            .value(row)
    };
    let latest = batches
        .iter()
        .flat_map(|b| (0..b.num_rows()).map(|r| year(b, r)))
        .max()
        .expect("a non-empty list");
    let mut people: BTreeMap<String, BTreeMap<(String, usize), f64>> = BTreeMap::new();
    for batch in &batches {
        for row in 0..batch.num_rows() {
            if year(batch, row) != latest {
                continue;
            }
            let area = text(column(batch, "area_code"), row)
                .expect("a text cell")
                .to_owned();
            let sex = text(column(batch, "sex"), row)
                .expect("a text cell")
                .to_owned();
            let label = text(column(batch, "age"), row).expect("a text cell");
            let band = LABELS
                .iter()
                .position(|l| *l == label)
                .expect("the column is in the header");
            let n = batch
                .column_by_name("population")
                .expect("the column is in the result")
                .as_primitive::<Int64Type>()
                .value(row);
            *people
                .entry(area)
                .or_default()
                .entry((sex, band))
                .or_default() += n as f64;
        }
    }

    let mut lines = rates_csv.lines();
    let header = CsvHeader::read(&mut lines);
    let at = |name: &str| header.at(name);
    let mut checked = 0;
    let mut by_hand_rates = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        let commissioner = fields[at("commissioner")];
        let empty = BTreeMap::new();
        let expected = dsr_by_hand(
            events.get(commissioner).unwrap_or(&empty),
            &people[commissioner],
        );
        let reported: Vec<Option<f64>> = ["dsr", "dsr_lower95", "dsr_upper95"]
            .iter()
            .map(|name| fields[at(name)].parse().ok())
            .collect();
        match expected {
            None => assert!(
                reported.iter().all(Option::is_none),
                "{commissioner}: {line}"
            ),
            Some(values) => {
                for (value, got) in values.iter().zip(&reported) {
                    let got = got.expect("a value");
                    assert!(
                        (value - got).abs() <= 0.0006,
                        "{commissioner}: {value} by hand, {got} reported"
                    );
                }
                by_hand_rates.push((commissioner.to_owned(), values[0]));
            }
        }
        let flagged: f64 = fields[at("flagged")].parse().expect("a number");
        assert_eq!(
            flagged,
            activity.get(commissioner).copied().unwrap_or(0.0),
            "{commissioner}"
        );
        checked += 1;
    }
    assert_eq!(
        checked,
        people.len(),
        "one row per commissioner with a population"
    );

    // The headline's spread and reduction opportunity from the rates by hand.
    let mut sorted: Vec<f64> = by_hand_rates.iter().map(|(_, r)| *r).collect();
    sorted.sort_by(f64::total_cmp);
    let p25 = percentile(&sorted, 0.25);
    let avoidable: f64 = by_hand_rates
        .iter()
        .filter(|(_, rate)| *rate > p25)
        .map(|(c, rate)| activity[c] * (1.0 - p25 / rate))
        .sum();
    let mut lines = headline_csv.lines();
    let header = CsvHeader::read(&mut lines);
    let fields: Vec<&str> = lines
        .next()
        .expect("one more line or item")
        .split(',')
        .collect();
    let get = |name: &str| -> f64 { fields[header.at(name)].parse().expect("a number") };
    assert!((get("p25") - p25).abs() <= 0.0006);
    assert!((get("p10") - percentile(&sorted, 0.10)).abs() <= 0.0006);
    assert!((get("p50") - percentile(&sorted, 0.50)).abs() <= 0.0006);
    assert!((get("p90") - percentile(&sorted, 0.90)).abs() <= 0.0006);
    assert!((get("n_fold") - sorted[sorted.len() - 1] / sorted[0]).abs() <= 0.0006);
    assert_eq!(get("reduction_opportunity"), avoidable.round());
    assert_eq!(get("flagged"), activity.values().sum::<f64>());
}
