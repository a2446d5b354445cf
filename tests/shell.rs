//! `ebiq shell` driven as a user drives it: statements piped in, output read back, Ctrl-C sent.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

fn shell() -> Child {
    Command::new(env!("CARGO_BIN_EXE_ebiq"))
        .args(["shell", "--no-history"])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the process starts")
}

fn session(input: &str) -> Output {
    let mut child = shell();
    child
        .stdin
        .take()
        .expect("a piped stream")
        .write_all(input.as_bytes())
        .expect("a writable pipe");
    child.wait_with_output().expect("the process ends")
}

#[test]
fn a_piped_statement_counts_the_flagged_sample_records() {
    let output = session(
        "SELECT count(*) AS flagged FROM opa WHERE ebi_lower_back_imaging(\
         der_procedure_all, age_at_start_of_episode_sus, der_age_at_cds_activity_date,\
         der_diagnosis_all, administrative_category) IS NOT NULL;\n",
    );
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 output");
    // The same figure the report's provider-by-month totals add up to (tests/independent_count.rs).
    assert!(stdout.contains("| 2093    |"), "{stdout}");
}

#[test]
fn an_error_mid_session_is_shown_and_the_session_goes_on() {
    let output = session(
        "\\pset format csv\n\
         SELECT no_such_column FROM opa;\n\
         SELECT count(*) AS rows\n  FROM opa;\n\
         \\rules\n\
         \\d apcs\n\
         \\nonsense\n\
         SELECT 'after' AS last;\n",
    );
    assert!(output.status.success());
    let (stdout, stderr) = (
        String::from_utf8(output.stdout).expect("UTF-8 output"),
        String::from_utf8(output.stderr).expect("UTF-8 output"),
    );
    assert!(stderr.contains("No field named no_such_column"), "{stderr}");
    assert!(stderr.contains("unknown command '\\nonsense'"), "{stderr}");
    // The statement over two lines ran after the error, in the format switched to by \pset.
    assert!(stdout.contains("rows\n60000\n"), "{stdout}");
    assert!(stdout.contains("ebi_lower_back_imaging_included_by_der_procedure_all("));
    assert!(stdout.contains("tsql_like(text, pattern[, escape])"));
    assert!(stdout.contains("sus_month(der_activity_month)"));
    assert!(
        stdout.contains("der_diagnosis_all"),
        "\\d apcs lists its columns"
    );
    assert!(stdout.ends_with("last\nafter\n"), "{stdout}");
}

#[test]
fn ctrl_c_cancels_the_running_statement_and_keeps_the_session() {
    let mut child = shell();
    child
        .stdin
        .take()
        .expect("a piped stream")
        .write_all(
            b"SELECT 'ready' AS marker;\n\
              SELECT sum(value) FROM generate_series(1, 10000000000);\n\
              SELECT 40 + 2 AS answer;\n",
        )
        .expect("a writable pipe");
    let mut stdout = BufReader::new(child.stdout.take().expect("a piped stream"));
    let mut seen = String::new();
    // Once the first statement's answer is out, the second (minutes of work) is running.
    while !seen.contains("ready") {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).expect("a readable pipe") > 0,
            "shell ended early: {seen}"
        );
        seen.push_str(&line);
    }
    std::thread::sleep(Duration::from_millis(300));
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("the process runs");
    assert!(kill.success());
    let mut rest = String::new();
    stdout
        .read_to_string(&mut rest)
        .expect("a readable text file");
    let status = child.wait().expect("the process ends");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("a piped stream")
        .read_to_string(&mut stderr)
        .expect("a readable text file");
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("statement cancelled"), "{stderr}");
    assert!(rest.contains("| 42     |"), "{rest}");
}

#[test]
fn rules_lists_the_statistics_and_shows_one_in_full() {
    let output = session("\\rules\n\\rules dsr\n");
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 output");
    for syntax in [
        "wilson(x, n, confidence)",
        "byar(o, confidence)",
        "funnel_proportion(baseline, n, confidence)",
        "dsr(count, population, standard_population, confidence, multiplier)",
        "xmr(value, improvement[, target[, recalculate[, fix_after[, screen]]]]) OVER (ORDER BY month)",
        "esp_age_band(age)",
        "rate(x, n, confidence, multiplier)",
        "isr(observed, population, reference_rate, confidence)",
        "israte(observed, population, reference_count, reference_population, confidence, multiplier)",
        "funnel_ratio(expected, confidence)",
        "funnel_rate(average, denominator, confidence, multiplier)",
        "funnel_significance(observed, denominator, baseline)",
        "overdispersion(observed, expected, method[, trim])",
        "dsr_events(persons, event_frequency, band, population, standard_population, confidence, multiplier)",
        "funnel_ratio_od(expected, confidence, method, phi, tau2)",
        "tsql_like(",
    ] {
        assert!(stdout.contains(syntax), "{syntax} missing: {stdout}");
    }
    assert!(stdout.contains("Dobson"), "dsr's description: {stdout}");
    let rule = session("\\rules ebi_lower_back_imaging\n");
    let rule = String::from_utf8(rule.stdout).expect("UTF-8 output");
    assert!(
        rule.contains("Low back pain imaging (version last reviewed September 2024, effective published January 2020)"),
        "{rule}"
    );
    assert!(
        stdout.contains("multiplier: 100000 for a rate per 100,000"),
        "{stdout}"
    );
}
