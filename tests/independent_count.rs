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

/// The published "Low back pain imaging" rule, written out by hand, intended NULL reading: `None`
/// when the procedures are not the rule's spine imaging, else whether the rule flags the record.
fn spine_imaging_flagged(
    procedures: Option<&str>,
    age_at_start: Option<i32>,
    age_at_activity: Option<i32>,
    diagnoses: Option<&str>,
    admin_category: Option<&str>,
) -> Option<bool> {
    let procedures = procedures?;
    let procedures = procedures.to_ascii_uppercase();
    let p = procedures.as_bytes();
    let spine = contains(p, "U054") || contains(p, "U055");
    let bone_or_nec = [
        "U132", "U133", "U135", "U136", "U211", "U212", "U216", "U217",
    ]
    .iter()
    .any(|code| contains(p, code));
    let site = contains(p, "Z665") || contains(p, "O162");
    if !(spine || (bone_or_nec && site)) {
        return None;
    }
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
    Some(adult && !cancer && !private)
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
struct Record<'a> {
    /// Whether the rule flags it (every record visited is spine imaging).
    flagged: bool,
    provider: &'a str,
    commissioner: &'a str,
    month: &'a str,
    age: Option<i32>,
    sex: Option<&'a str>,
}

/// Calls `visit` with every record the rule flags, read straight from the Parquet files.
fn each_flagged(opa: &Path, mut visit: impl FnMut(&Record<'_>)) {
    each_spine_imaging(opa, |record| {
        if record.flagged {
            visit(record);
        }
    });
}

/// Calls `visit` with every spine imaging record (the rule's procedures), flagged or not.
fn each_spine_imaging(opa: &Path, mut visit: impl FnMut(&Record<'_>)) {
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
                if let Some(flagged) = spine_imaging_flagged(
                    text(c("Der_Procedure_All"), row),
                    age_at_start,
                    age_at_activity,
                    text(c("Der_Diagnosis_All"), row),
                    text(c("Administrative_Category"), row),
                ) {
                    visit(&Record {
                        flagged,
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
    let out = common::scratch(&format!("independent-{name}"));
    let status = Command::new(env!("CARGO_BIN_EXE_ebiq"))
        .args(["report", "--quiet", "--format", "csv", "--out"])
        .arg(&*out)
        .arg("--data")
        .arg(project().join("data-samples"))
        .arg("--queries")
        .arg(project().join("queries"))
        .status()
        .expect("the process runs");
    assert!(status.success());
    outputs.map(|output| {
        std::fs::read_to_string(out.join(format!("{output}.csv"))).expect("a readable text file")
    })
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

/// Byar's approximation at `count` events: `count (1 - 1/(9 count) + z/(3 √count))³`, the lower
/// limit with `count` = O and `z` negative, the upper with O + 1 and `z` positive.
fn byar(count: f64, z: f64) -> f64 {
    count * (1.0 - 1.0 / (9.0 * count) + z / (3.0 * count.sqrt())).powi(3)
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
    let (lower_o, upper_o) = (byar(total, -Z95), byar(total + 1.0, Z95));
    let scale = (squared / standard / standard / total).sqrt() * 1e5;
    Some([
        rate,
        rate + scale * (lower_o - total),
        rate + scale * (upper_o - total),
    ])
}

/// What the standardised rates by commissioner are computed from, read by hand.
struct Commissioners {
    /// Flagged events by commissioner, then sex and band (known age and sex only).
    events: BTreeMap<String, BTreeMap<(String, usize), f64>>,
    /// All flagged activity by commissioner.
    activity: BTreeMap<String, f64>,
    /// The latest population year's residents by commissioner, then sex and band.
    people: BTreeMap<String, BTreeMap<(String, usize), f64>>,
}

fn commissioners_by_hand() -> Commissioners {
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

    Commissioners {
        events,
        activity,
        people,
    }
}

#[test]
fn standardised_rates_equal_a_recomputation_by_hand() {
    let [rates_csv, headline_csv] = report_csvs(
        "dsr",
        ["06_standardised_rates_by_commissioner", "07_headline"],
    );

    let Commissioners {
        events,
        activity,
        people,
    } = commissioners_by_hand();
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

/// ln Γ(x) for x > 0: Lanczos' approximation (g = 7, nine coefficients).
fn ln_gamma(x: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    let x = x - 1.0;
    let t = x + 7.5;
    let series = C[0]
        + C.iter()
            .enumerate()
            .skip(1)
            .map(|(i, c)| c / (x + i as f64))
            .sum::<f64>();
    0.5 * std::f64::consts::TAU.ln() + (x + 0.5) * t.ln() - t + series.ln()
}

/// The regularised lower incomplete gamma P(a, x): its power series below x = a + 1, else one
/// minus the continued fraction of Q (modified Lentz).
fn gamma_p(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    let front = (a * x.ln() - x - ln_gamma(a)).exp();
    if x < a + 1.0 {
        let (mut term, mut sum, mut denominator) = (1.0 / a, 1.0 / a, a);
        for _ in 0..100_000 {
            denominator += 1.0;
            term *= x / denominator;
            sum += term;
            if term < sum * 1e-17 {
                break;
            }
        }
        return sum * front;
    }
    const TINY: f64 = 1e-300;
    let mut b = x + 1.0 - a;
    let (mut c, mut d) = (1.0 / TINY, 1.0 / b);
    let mut fraction = d;
    for i in 1..100_000 {
        let i = f64::from(i);
        let numerator = -i * (i - a);
        b += 2.0;
        d = numerator * d + b;
        d = if d.abs() < TINY { TINY } else { d };
        c = b + numerator / c;
        c = if c.abs() < TINY { TINY } else { c };
        d = 1.0 / d;
        fraction *= d * c;
        if (d * c - 1.0).abs() < 1e-16 {
            break;
        }
    }
    1.0 - front * fraction
}

/// A value printed rounded to `half_step` either side solves `f(v) = target` for a monotone `f`:
/// `f` at the two ends of the rounding interval lies either side of the target.
fn solves(f: impl Fn(f64) -> f64, value: f64, half_step: f64, target: f64) -> bool {
    (f(value - half_step) - target) * (f(value + half_step) - target) <= 0.0
}

const Z998: f64 = 3.090_232_306_167_813;

/// PHE's significance of `observed` events against `expected` at the average, in its words: the
/// average below the exact lower limit of the events is `High`, above the upper `Low`.
fn significance_by_hand(observed: f64, expected: f64) -> &'static str {
    let below = gamma_p(observed, expected);
    let above = gamma_p(observed + 1.0, expected);
    if observed > 0.0 && below < 0.001 {
        "High (0.001)"
    } else if observed > 0.0 && below < 0.025 {
        "High (0.025)"
    } else if above > 0.999 {
        "Low (0.001)"
    } else if above > 0.975 {
        "Low (0.025)"
    } else {
        "Not significant"
    }
}

/// Spine imaging appointments and those flagged, by provider, ESP age band and sex (unknown age
/// or sex a band of its own).
type Strata = BTreeMap<(String, String, String), (f64, f64)>;

fn provider_strata_by_hand() -> Strata {
    let mut strata = Strata::new();
    each_spine_imaging(&project().join("data-samples/opa"), |record| {
        let band = record
            .age
            .and_then(band_of)
            .map_or("unknown", |b| LABELS[b]);
        let key = (
            provider(record.provider),
            band.to_owned(),
            record.sex.unwrap_or("unknown").to_owned(),
        );
        let cell = strata.entry(key).or_default();
        cell.0 += 1.0;
        cell.1 += f64::from(u8::from(record.flagged));
    });
    strata
}

#[test]
fn casemix_funnel_equals_a_recomputation_by_hand() {
    let [csv] = report_csvs("casemix", ["10_provider_casemix_funnel"]);
    let strata = provider_strata_by_hand();
    let mut national: BTreeMap<(&str, &str), (f64, f64)> = BTreeMap::new();
    for ((_, band, sex), (n, flagged)) in &strata {
        let cell = national.entry((band, sex)).or_default();
        cell.0 += n;
        cell.1 += flagged;
    }
    // Each provider's spine imaging, observed and expected flagged counts.
    let mut providers: BTreeMap<&str, [f64; 3]> = BTreeMap::new();
    for ((provider, band, sex), (n, flagged)) in &strata {
        let (all, all_flagged) = national[&(band.as_str(), sex.as_str())];
        let cell = providers.entry(provider).or_default();
        cell[0] += n;
        cell[1] += flagged;
        cell[2] += n * all_flagged / all;
    }
    let observed: f64 = providers.values().map(|p| p[1]).sum();
    let expected: f64 = providers.values().map(|p| p[2]).sum();
    assert!(
        observed > 500.0 && (observed - expected).abs() < 1e-6,
        "indirect standardisation expects the national count: {observed} {expected}"
    );

    // SHMI's overdispersion: z = sqrt(E) ln(O / E), the outer tenths by rank left out.
    let scores: Vec<(f64, f64)> = providers
        .values()
        .filter(|p| p[2] > 0.0)
        .map(|p| (p[2].sqrt() * (p[1] / p[2]).ln(), p[2]))
        .collect();
    let n = scores.len() as f64;
    let kept: Vec<(f64, f64)> = scores
        .iter()
        .copied()
        .filter(|(z, _)| {
            let below = scores.iter().filter(|(other, _)| other < z).count() as f64;
            let tied = scores.iter().filter(|(other, _)| other == z).count() as f64;
            let part = ((below + (tied + 1.0) / 2.0) * 10.0 / (n + 1.0)).floor();
            (1.0..=8.0).contains(&part)
        })
        .collect();
    let m = kept.len() as f64;
    let phi = kept.iter().map(|(z, _)| z * z).sum::<f64>() / m;
    let weights: f64 = kept.iter().map(|(_, e)| e).sum();
    let squares: f64 = kept.iter().map(|(_, e)| e * e).sum();
    let tau2 = ((m * phi - (m - 1.0)) / (weights - squares / weights)).max(0.0);

    let mut lines = csv.lines();
    let header = CsvHeader::read(&mut lines);
    let mut rows = 0;
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        let get = |name: &str| -> f64 { fields[header.at(name)].parse().expect("a number") };
        let name = fields[header.at("provider")];
        let [spine, o, e] = providers[name];
        assert_eq!(get("spine_imaging"), spine, "{name}");
        assert_eq!(get("flagged"), o, "{name}");
        if e == 0.0 {
            // Only patients no one flags (the young): no ratio, limits or place on the funnel.
            assert_eq!(get("expected"), 0.0, "{line}");
            for empty in ["ratio", "ratio_lower95", "funnel_upper998", "outlier"] {
                assert_eq!(fields[header.at(empty)], "", "{line}");
            }
            rows += 1;
            continue;
        }
        assert!(
            (get("expected") - e).abs() <= 0.0005 + 1e-9,
            "{name}: {line}"
        );
        assert!(
            (get("ratio") - o / e).abs() <= 0.00005 + 1e-9,
            "{name}: {line}"
        );
        assert!((get("phi") - phi).abs() <= 0.00005 + 1e-9, "{line}");
        assert!(
            (get("tau2") - tau2).abs() <= 0.000_000_005 + 1e-12,
            "{line}"
        );

        // The ratio's own 95% interval: exact below 10 events, Byar's from 10.
        let (lower, upper) = (get("ratio_lower95"), get("ratio_upper95"));
        let step = 0.000_051 * e;
        if o >= 10.0 {
            assert!(
                (lower - byar(o, -Z95) / e).abs() <= 0.000_05 + 1e-9,
                "{line}"
            );
            assert!(
                (upper - byar(o + 1.0, Z95) / e).abs() <= 0.000_05 + 1e-9,
                "{line}"
            );
        } else {
            assert!(
                o == 0.0 || solves(|x| gamma_p(o, x), lower * e, step, 0.025),
                "{line}"
            );
            assert!(
                solves(|x| gamma_p(o + 1.0, x), upper * e, step, 0.975),
                "{line}"
            );
        }

        // The funnel at E: widened by tau2 when phi > 1, else the exact Poisson limits.
        for (level, z, tail) in [(95, Z95, 0.025), (998, Z998, 0.001)] {
            let lower = get(&format!("funnel_lower{level}"));
            let upper = get(&format!("funnel_upper{level}"));
            if phi > 1.0 {
                let spread = z * (1.0 / e + tau2).sqrt();
                assert!((lower - (-spread).exp()).abs() <= 0.000_05 + 1e-9, "{line}");
                assert!((upper - spread.exp()).abs() <= 0.000_05 + 1e-9, "{line}");
            } else {
                assert!(solves(|x| gamma_p(e, x), lower * e, step, tail), "{line}");
                assert!(
                    solves(|x| gamma_p(e + 1.0, x), upper * e, step, 1.0 - tail),
                    "{line}"
                );
            }
        }
        // Where the ratio falls against those limits, unless it is within rounding of one.
        let ratio = o / e;
        let limits = [
            "funnel_lower998",
            "funnel_upper998",
            "funnel_lower95",
            "funnel_upper95",
        ]
        .map(get);
        if limits.iter().all(|limit| (ratio - limit).abs() > 0.0001) {
            let outlier = if ratio > limits[1] {
                "high 99.8%"
            } else if ratio > limits[3] {
                "high 95%"
            } else if ratio < limits[0] {
                "low 99.8%"
            } else if ratio < limits[2] {
                "low 95%"
            } else {
                "within"
            };
            assert_eq!(fields[header.at("outlier")], outlier, "{line}");
        }
        rows += 1;
    }
    assert_eq!(rows, providers.len(), "one row per provider");
}

#[test]
fn dsr_funnel_equals_a_recomputation_by_hand() {
    let [csv] = report_csvs("dsr-funnel", ["11_commissioner_dsr_funnel"]);
    let Commissioners { events, people, .. } = commissioners_by_hand();
    let empty = BTreeMap::new();
    // Events, DSR and PHE's derived denominator (100,000 × events / DSR) by commissioner.
    let areas: BTreeMap<&str, (f64, Option<f64>, Option<f64>)> = people
        .iter()
        .map(|(area, bands)| {
            let own = events.get(area).unwrap_or(&empty);
            let count: f64 = own.values().sum();
            let dsr = dsr_by_hand(own, bands).map(|[value, ..]| value);
            let derived = dsr.filter(|_| count > 0.0).map(|d| 1e5 * count / d);
            (area.as_str(), (count, dsr, derived))
        })
        .collect();
    let average = 1e5 * areas.values().map(|a| a.0).sum::<f64>()
        / areas.values().filter_map(|a| a.2).sum::<f64>();

    let mut lines = csv.lines();
    let header = CsvHeader::read(&mut lines);
    let mut rows = 0;
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        let cell = |name: &str| fields[header.at(name)];
        let number = |name: &str| -> Option<f64> { cell(name).parse().ok() };
        let (count, dsr, derived) = areas[cell("commissioner")];
        assert_eq!(number("events"), Some(count), "{line}");
        assert!(
            (number("average_rate").expect("a rate") - average).abs() <= 0.0006,
            "{line}"
        );
        let significance = cell("significance");
        let (Some(dsr), Some(derived)) = (dsr, derived) else {
            assert_eq!(number("dsr"), None, "{line}");
            assert_eq!(number("funnel_upper95"), None, "{line}");
            assert_eq!(
                significance,
                "Not applicable for events less than 10 for dsrs"
            );
            rows += 1;
            continue;
        };
        assert!(
            (number("dsr").expect("a rate") - dsr).abs() <= 0.0006,
            "{line}"
        );
        let reported = number("derived_denominator").expect("a denominator");
        assert!(
            (reported - derived).abs() <= 0.05 + derived * 1e-9,
            "{line}"
        );

        // PHE's rate funnel at the derived denominator: the upper limit's events O solve
        // P(O, E) = α/2 and the lower's P(O + 1, E) = 1 - α/2 (0 where none), E being the events
        // the average rate gives that denominator; rates are rounded to 0.001.
        let expected = average / 1e5 * derived;
        let step = 0.000_51 * derived / 1e5;
        for (level, tail) in [(95, 0.025), (998, 0.001)] {
            let upper = number(&format!("funnel_upper{level}")).expect("a limit") * derived / 1e5;
            let lower = number(&format!("funnel_lower{level}")).expect("a limit") * derived / 1e5;
            assert!(
                solves(|o| gamma_p(o, expected), upper, step, tail),
                "{line}"
            );
            assert!(
                solves(|o| gamma_p(o + 1.0, expected), lower, step, 1.0 - tail)
                    || (lower == 0.0 && gamma_p(1.0, expected) < 1.0 - tail),
                "{line}"
            );
        }
        if count >= 10.0 {
            assert_eq!(
                significance,
                significance_by_hand(count, expected),
                "{line}"
            );
        }
        rows += 1;
    }
    assert_eq!(
        rows,
        areas.len(),
        "one row per commissioner with a population"
    );
}
