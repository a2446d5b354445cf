//! `ebiq report --format html` in a real browser: Debian's headless Chromium loads the page from a
//! file, with no console message and nothing fetched from elsewhere, and each chart holds the
//! points its query's CSV result says it should; a screenshot is saved beside the page.
//!
//! `EBIQ_HTML_DATA=DIR cargo test --test html_report` runs the same checks over another dataset
//! (such as a generated 20M-row one) instead of `data-samples/`; with `EBIQ_BIN=.../release/ebiq`
//! they drive a release build.
//!
//! The page's text is checked without a browser (nothing fetched, each chart's points). Chromium is
//! installed by `.ci/run`; on a machine without it the browser part says so and is skipped, except
//! under CI (`CI` set), where its absence fails the test.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Scratch, ebiq_ok, scratch};

const CHROMIUM: &str = "/usr/bin/chromium";

fn chromium(profile: &Path, args: &[&str]) -> std::process::Output {
    Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("the process runs")
}

/// The rows of a CSV output as maps from column to cell.
fn csv_rows(path: &Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).expect("a readable text file");
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .expect("one more line or item")
        .split(',')
        .map(str::to_owned)
        .collect();
    lines
        .map(|line| {
            header
                .iter()
                .cloned()
                .zip(line.split(',').map(str::to_owned))
                .collect()
        })
        .collect()
}

fn numeric(cell: &str) -> bool {
    cell.parse::<f64>().is_ok()
}

/// Points each chart should draw, from the same report as CSV.
fn expected_points(csv: &Path) -> BTreeMap<&'static str, usize> {
    let funnel = csv_rows(&csv.join("08_provider_funnel.csv"))
        .iter()
        .filter(|r| numeric(&r["share"]) && numeric(&r["spine_imaging"]))
        .count();
    let spc = csv_rows(&csv.join("09_national_trend_spc.csv"))
        .iter()
        .filter(|r| numeric(&r["flagged"]))
        .count();
    let interval = csv_rows(&csv.join("06_standardised_rates_by_commissioner.csv"))
        .iter()
        .filter(|r| numeric(&r["dsr"]) && numeric(&r["dsr_lower95"]) && numeric(&r["dsr_upper95"]))
        .count();
    // The eight providers with most flagged activity, one point per month with a count.
    let rows = csv_rows(&csv.join("01_flagged_by_provider_month.csv"));
    let mut totals: BTreeMap<String, f64> = BTreeMap::new();
    let mut months: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for row in rows.iter().filter(|r| numeric(&r["flagged"])) {
        *totals.entry(row["provider"].clone()).or_default() +=
            row["flagged"].parse::<f64>().expect("a number");
        months
            .entry(row["provider"].clone())
            .or_default()
            .insert(row["month"].clone());
    }
    let mut ranked: Vec<(String, f64)> = totals.into_iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let line = ranked.iter().take(8).map(|(p, _)| months[p].len()).sum();
    let ratio_funnel = csv_rows(&csv.join("10_provider_casemix_funnel.csv"))
        .iter()
        .filter(|r| numeric(&r["ratio"]) && r["expected"].parse().is_ok_and(|e: f64| e > 0.0))
        .count();
    let rate_funnel = csv_rows(&csv.join("11_commissioner_dsr_funnel.csv"))
        .iter()
        .filter(|r| numeric(&r["dsr"]) && numeric(&r["derived_denominator"]))
        .count();
    BTreeMap::from([
        ("01_flagged_by_provider_month", line),
        ("06_standardised_rates_by_commissioner", interval),
        ("08_provider_funnel", funnel),
        ("09_national_trend_spc", spc),
        ("10_provider_casemix_funnel", ratio_funnel),
        ("11_commissioner_dsr_funnel", rate_funnel),
    ])
}

/// The hover targets inside each query's chart, from the browser's DOM: each query is a
/// `<section id="NAME">` holding at most one `<figure>`.
fn drawn_points(dom: &str) -> BTreeMap<String, usize> {
    let mut found = BTreeMap::new();
    for section in dom.split("<section id=\"").skip(1) {
        let name = section.split('"').next().expect("a value").to_owned();
        let section = section
            .split("</section>")
            .next()
            .expect("one more line or item");
        let Some(figure) = section.split("<figure").nth(1) else {
            continue;
        };
        let figure = figure
            .split("</figure>")
            .next()
            .expect("one more line or item");
        found.insert(name, figure.matches("<circle class=\"point\"").count());
    }
    found
}

/// The report run as HTML and as CSV into the returned folder's `html/` and `csv/`.
fn run(name: &str, extra: &[&str]) -> (Scratch, PathBuf, PathBuf) {
    let dir = scratch(name);
    let (html, csv) = (dir.join("html"), dir.join("csv"));
    let data = std::env::var("EBIQ_HTML_DATA").ok();
    for (format, out) in [("html", &html), ("csv", &csv)] {
        let out = out.display().to_string();
        let mut args = vec![
            "report",
            "--quiet",
            "--format",
            format,
            "--out",
            out.as_str(),
        ];
        args.extend_from_slice(extra);
        if let Some(data) = &data {
            args.extend(["--data", data.as_str()]);
        }
        ebiq_ok(&args);
    }
    (dir, html, csv)
}

/// Each chart holds the points its query's CSV result says it should.
fn assert_points(drawn: &BTreeMap<String, usize>, csv: &Path) {
    let expected = expected_points(csv);
    assert!(
        expected.values().all(|n| *n > 0),
        "every chart has points: {expected:?}"
    );
    for (query, points) in expected {
        assert_eq!(
            drawn.get(query).copied(),
            Some(points),
            "{query} chart points: {drawn:?}"
        );
    }
}

/// What the page's own text shows, with or without a browser: nothing loaded from elsewhere, and
/// each chart's points.
fn page_check(html: &Path, csv: &Path) {
    let text = std::fs::read_to_string(html.join("report.html")).expect("the page was written");
    for outside in [
        "<script src",
        "<link",
        "@import",
        "url(",
        "src=\"http",
        "href=\"http",
    ] {
        assert!(!text.contains(outside), "the page loads {outside}...");
    }
    assert_points(&drawn_points(&text), csv);
}

/// The page's checks, then the same in Chromium's DOM with its console and a screenshot.
fn browser_check(html: &Path, csv: &Path, screenshot: &Path) {
    page_check(html, csv);
    if !Path::new(CHROMIUM).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install chromium (.ci/run does)"
        );
        eprintln!(
            "SKIPPED the browser part: {CHROMIUM} is not installed (apt-get install chromium)"
        );
        return;
    }
    let page = html.join("report.html");
    let url = format!("file://{}", page.display());
    let profile = html.join("profile");
    let dom = chromium(&profile, &["--dump-dom", &url]);
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let log = String::from_utf8_lossy(&dom.stderr);
    assert!(!log.contains(":CONSOLE("), "console messages: {log}");
    let dom = String::from_utf8(dom.stdout).expect("UTF-8 output");
    assert!(dom.contains("<h1>Evidence-Based Interventions: Low back pain imaging</h1>"));
    assert!(dom.contains("version last reviewed September 2024, effective published January 2020"));
    assert_points(&drawn_points(&dom), csv);
    assert!(
        dom.contains("<g class=\"icon variation\" data-icon=\""),
        "the SPC chart draws its variation icon"
    );
    let shot = chromium(
        &profile,
        &[
            &format!("--screenshot={}", screenshot.display()),
            "--window-size=1100,2400",
            "--hide-scrollbars",
            &url,
        ],
    );
    assert!(
        shot.status.success(),
        "{}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let png = std::fs::read(screenshot).expect("a readable file");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 50_000,
        "a screenshot of a drawn page"
    );
}

#[test]
fn the_html_report_renders_every_chart_in_a_browser() {
    let (_dir, html, csv) = run("html", &[]);
    let screenshot = html.join("report.png");
    browser_check(&html, &csv, &screenshot);
    let manifest =
        std::fs::read_to_string(html.join("manifest.json")).expect("a readable text file");
    assert!(manifest.contains("report.html"));
}

#[test]
fn suppression_and_months_carry_through_to_the_page() {
    let (_dir, html, csv) = run(
        "html-suppressed",
        &["--suppress", "--from", "2024-01", "--to", "2024-06"],
    );
    let page = std::fs::read_to_string(html.join("report.html")).expect("a readable text file");
    assert!(
        page.contains("<dd>2024-01 to 2024-06</dd>"),
        "the months run are stated"
    );
    assert!(page.contains("small numbers suppressed"));
    // Only the small sample is sure to have small numbers.
    let on_sample = std::env::var_os("EBIQ_HTML_DATA").is_none();
    assert!(
        !on_sample || page.contains("<td class=\"n\">*</td>"),
        "suppressed cells in the tables"
    );
    // Six months on the SPC chart; suppressed providers are not drawn on the funnel.
    browser_check(&html, &csv, &html.join("report.png"));
    let funnel = csv_rows(&csv.join("08_provider_funnel.csv"));
    if on_sample {
        assert!(
            funnel.iter().any(|r| r["share"] == "*"),
            "the sample has suppressed providers"
        );
    }
}
