//! The `ebiq` binary as a user or a scheduler meets it: outputs, exit codes, messages.

mod common;

use std::process::Command;

use common::{CsvHeader, ebiq, ebiq_ok, project, report_queries, scratch, stderr};

#[test]
fn report_with_no_arguments_prints_every_table_for_the_sample() {
    let output = ebiq(&["report"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8(output.stdout.clone()).expect("UTF-8 output");
    for name in [
        "01_flagged_by_provider_month",
        "02_flagged_by_commissioner_month",
        "03_flagged_share_of_spine_imaging_by_provider",
        "04_national_monthly_trend",
        "05_flagged_attended_by_provider_month",
    ] {
        assert!(
            stdout.contains(&format!("\n{name}: ")) || stdout.starts_with(name),
            "{name} missing"
        );
    }
    assert!(stdout.contains("| provider | month  | flagged |"));
    // The summary goes to stderr, never into the results.
    let summary = format!(
        "{} queries over 60000 outpatient rows",
        report_queries().len()
    );
    assert!(stderr(&output).contains(&summary), "{}", stderr(&output));
    assert!(!stdout.contains("queries over"));
}

#[test]
fn months_restrict_every_query_and_json_goes_to_stdout() {
    let output = ebiq(&[
        "report", "--from", "2024-01", "--to", "202402", "--format", "json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 output");
    let months: Vec<&str> = stdout
        .lines()
        .filter_map(|line| line.split("\"month\":\"").nth(1))
        .map(|rest| &rest[..6])
        .collect();
    assert!(!months.is_empty());
    assert!(
        months.iter().all(|m| *m == "202401" || *m == "202402"),
        "{months:?}"
    );
    assert!(
        stdout
            .lines()
            .all(|line| line.starts_with('{') && line.ends_with('}'))
    );
}

#[test]
fn outputs_are_whole_files_one_per_query() {
    let out = scratch("outputs");
    let out_arg = out.to_str().expect("a UTF-8 path");
    for format in ["csv", "json", "parquet", "table"] {
        let output = ebiq(&["report", "--quiet", "--out", out_arg, "--format", format]);
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .expect("a listable folder")
        .map(|e| {
            e.expect("a folder entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    // One output per query in each of four formats, and the last run's manifest.
    let queries = report_queries();
    assert_eq!(names.len(), 4 * queries.len() + 1, "{names:?}");
    assert!(names.contains(&"manifest.json".to_owned()));
    for query in &queries {
        for extension in ["csv", "json", "parquet", "txt"] {
            let name = format!("{query}.{extension}");
            assert!(names.contains(&name), "{name} missing: {names:?}");
        }
    }
    assert!(
        names
            .iter()
            .all(|n| !n.contains("partial") && !n.starts_with('.')),
        "{names:?}"
    );
    let csv = std::fs::read_to_string(out.join("04_national_monthly_trend.csv"))
        .expect("a readable text file");
    assert!(
        csv.starts_with("month,appointments,spine_imaging,flagged\n202304,2500,"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 25);
    let parquet =
        std::fs::read(out.join("04_national_monthly_trend.parquet")).expect("a readable file");
    assert!(parquet.starts_with(b"PAR1") && parquet.ends_with(b"PAR1"));
}

#[test]
fn a_missing_dataset_is_an_error_naming_it() {
    let output = ebiq(&["report", "--data", "no/such/place"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("the dataset no/such/place does not exist"),
        "{}",
        stderr(&output)
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn usage_errors_exit_2() {
    let bad_month = ebiq(&["report", "--from", "2024-13"]);
    assert_eq!(bad_month.status.code(), Some(2));
    assert!(
        stderr(&bad_month).contains("'2024-13' is not a month"),
        "{}",
        stderr(&bad_month)
    );
    let backwards = ebiq(&["report", "--from", "2024-05", "--to", "2024-01"]);
    assert_eq!(backwards.status.code(), Some(2));
    assert!(stderr(&backwards).contains("--from 2024-05 is after --to 2024-01"));
    let bad_format = ebiq(&["report", "--format", "xlsx"]);
    assert_eq!(bad_format.status.code(), Some(2));
    assert!(stderr(&bad_format).contains("unknown format 'xlsx'"));
    let bad_mode = ebiq(&["report", "--null-mode", "lenient"]);
    assert_eq!(bad_mode.status.code(), Some(2));
    assert!(stderr(&bad_mode).contains("unknown null mode 'lenient'"));
}

#[test]
fn strict_tsql_mode_flags_fewer_records() {
    let count = |mode: &str| {
        let output = ebiq(&["report", "--null-mode", mode, "--format", "csv"]);
        assert!(output.status.success(), "{}", stderr(&output));
        let summary = stderr(&output);
        let flagged = summary
            .split(" outpatient rows, ")
            .nth(1)
            .expect("the line or field asked for");
        flagged
            .split(' ')
            .next()
            .expect("one more line or item")
            .parse::<u64>()
            .expect("a number")
    };
    let (intended, strict) = (count("intended"), count("strict_tsql"));
    assert!(strict < intended, "strict {strict} vs intended {intended}");
}

#[test]
fn generate_is_deterministic_for_a_seed_and_refuses_to_overwrite() {
    let (first, second) = (scratch("gen-a"), scratch("gen-b"));
    for dir in [&first, &second] {
        let output = ebiq(&[
            "generate",
            "--rows",
            "3000",
            "--months",
            "2024-01..2024-03",
            "--seed",
            "9",
            "--quiet",
            "--out",
            dir.to_str().expect("a UTF-8 path"),
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
    }
    for table in ["opa", "apcs"] {
        for month in ["202401", "202402", "202403"] {
            let name = format!("{table}/{table}_{month}.parquet");
            let (a, b) = (
                std::fs::read(first.join(&name)).expect("a readable file"),
                std::fs::read(second.join(&name)).expect("a readable file"),
            );
            assert_eq!(a, b, "{name} differs between runs with one seed");
        }
    }
    let again = ebiq(&[
        "generate",
        "--rows",
        "10",
        "--out",
        first.to_str().expect("a UTF-8 path"),
    ]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already holds files; pass --force"),
        "{}",
        stderr(&again)
    );
    let report = ebiq(&[
        "report",
        "--quiet",
        "--format",
        "csv",
        "--data",
        first.to_str().expect("a UTF-8 path"),
    ]);
    assert!(report.status.success(), "{}", stderr(&report));
    assert!(
        stderr(&report).contains("over 3000 outpatient rows"),
        "{}",
        stderr(&report)
    );
}

/// The distinct values of `column` in a Parquet file, and whether they came in sorted order.
fn values_of(path: &std::path::Path, column: &str) -> (std::collections::BTreeSet<String>, bool) {
    use datafusion::arrow::array::AsArray;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let reader = ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(path).expect("a readable file"),
    )
    .expect("a valid batch")
    .build()
    .expect("a built value");
    let mut values = Vec::new();
    for batch in reader {
        let batch = batch.expect("a readable batch");
        let array = batch
            .column_by_name(column)
            .expect("the column is in the result");
        values.extend(
            array
                .as_string::<i32>()
                .iter()
                .map(|v| v.expect("a value").to_owned()),
        );
    }
    let sorted = values.is_sorted();
    (values.into_iter().collect(), sorted)
}

#[test]
fn generate_layouts_mix_months_within_each_file() {
    for layout in ["by-provider", "shuffled"] {
        let dir = scratch(&format!("gen-{layout}"));
        ebiq_ok(&[
            "generate",
            "--rows",
            "3000",
            "--months",
            "2024-01..2024-03",
            "--layout",
            layout,
            "--quiet",
            "--out",
            dir.to_str().expect("a UTF-8 path"),
        ]);
        let mut names: Vec<String> = std::fs::read_dir(dir.join("opa"))
            .expect("a listable folder")
            .map(|entry| {
                entry
                    .expect("a folder entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "opa_part001.parquet",
                "opa_part002.parquet",
                "opa_part003.parquet"
            ]
        );
        for name in &names {
            let path = dir.join("opa").join(name);
            let (months, _) = values_of(&path, "Der_Activity_Month");
            assert_eq!(months.len(), 3, "{layout} {name}: {months:?}");
            let (_, by_provider) = values_of(&path, "Der_Provider_Code");
            assert_eq!(by_provider, layout == "by-provider", "{layout} {name}");
        }
        let report = ebiq_ok(&[
            "report",
            "--quiet",
            "--format",
            "csv",
            "--data",
            dir.to_str().expect("a UTF-8 path"),
        ]);
        assert!(
            stderr(&report).contains("over 3000 outpatient rows"),
            "{}",
            stderr(&report)
        );
    }
    let unknown = ebiq(&["generate", "--layout", "by-patient", "--out", "unused"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("by-month, by-provider or shuffled"),
        "{}",
        stderr(&unknown)
    );
}

#[test]
fn sql_runs_one_statement_or_a_file_and_names_the_failing_statement() {
    let count = ebiq(&[
        "sql",
        "--format",
        "csv",
        "SELECT count(*) AS n FROM opa WHERE der_activity_month = '202404'",
    ]);
    assert!(count.status.success(), "{}", stderr(&count));
    assert_eq!(String::from_utf8_lossy(&count.stdout), "n\n2500\n");
    let commented = ebiq(&[
        "sql",
        "--format",
        "csv",
        "-- as pasted from a query file\nSELECT 2 AS n",
    ]);
    assert!(commented.status.success(), "{}", stderr(&commented));
    assert_eq!(String::from_utf8_lossy(&commented.stdout), "n\n2\n");
    let flag_after = ebiq(&["sql", "SELECT 3 AS n", "--format", "csv"]);
    assert!(flag_after.status.success(), "{}", stderr(&flag_after));
    assert_eq!(String::from_utf8_lossy(&flag_after.stdout), "n\n3\n");

    let dir = scratch("sql");
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    let file = dir.join("two.sql");
    std::fs::write(&file, "SELECT 1 AS a;\n\nSELECT nope\nFROM opa;\n")
        .expect("a writable scratch file");
    let failed = ebiq(&[
        "sql",
        "--format",
        "csv",
        "-f",
        file.to_str().expect("a UTF-8 path"),
    ]);
    assert_eq!(failed.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&failed.stdout), "a\n1\n");
    let message = stderr(&failed);
    assert!(
        message.contains(&format!("{}, statement 2 (line 3)", file.display())),
        "{message}"
    );
    assert!(message.contains("No field named nope"), "{message}");
    assert_eq!(
        message.matches("No field named nope").count(),
        1,
        "{message}"
    );

    let out = dir.join("trend.parquet");
    let written = ebiq(&[
        "sql",
        "--out",
        out.to_str().expect("a UTF-8 path"),
        "SELECT der_activity_month, count(*) FROM opa GROUP BY 1",
    ]);
    assert!(written.status.success(), "{}", stderr(&written));
    assert!(written.stdout.is_empty());
    assert!(
        std::fs::read(&out)
            .expect("a readable file")
            .starts_with(b"PAR1")
    );
    let unknown = ebiq(&[
        "sql",
        "--out",
        dir.join("x.xlsx").to_str().expect("a UTF-8 path"),
        "SELECT 1",
    ]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("cannot tell the format"),
        "{}",
        stderr(&unknown)
    );
}

#[test]
fn a_file_url_reads_the_local_dataset_and_cloud_urls_need_their_settings() {
    let url = format!("file://{}", project().join("data-samples").display());
    let output = ebiq(&[
        "sql",
        "--data",
        &url,
        "--format",
        "csv",
        "SELECT count(*) AS n FROM apcs",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        String::from_utf8(output.stdout).expect("UTF-8 output"),
        "n\n12000\n"
    );

    let output = Command::new(env!("CARGO_BIN_EXE_ebiq"))
        .args(["sql", "--data", "az://sus/activity/", "SELECT 1"])
        .env_remove("AZURE_STORAGE_ACCOUNT_NAME")
        .output()
        .expect("the process runs");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains(
            "cannot set up Azure storage for az://sus/activity/: set AZURE_STORAGE_ACCOUNT_NAME"
        ),
        "{}",
        stderr(&output)
    );

    let output = ebiq(&["sql", "--data", "ftp://host/sus", "SELECT 1"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("cannot read ftp:// URLs"));
}

#[test]
fn a_report_run_leaves_a_manifest_describing_it() {
    let out = scratch("manifest");
    let output = ebiq(&[
        "report",
        "--quiet",
        "--from",
        "2024-01",
        "--to",
        "2024-03",
        "--out",
        out.to_str().expect("a UTF-8 path"),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = std::fs::read_to_string(out.join("manifest.json")).expect("a readable text file");
    let manifest: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(manifest["engine"]["name"], "ebiq");
    assert_eq!(manifest["parameters"]["from_month"], "2024-01");
    assert_eq!(manifest["parameters"]["null_mode"], "intended");
    // 24 monthly files per table in the sample and the population file, each with its size.
    let inputs = manifest["inputs"].as_array().expect("a JSON array");
    assert_eq!(inputs.len(), 49);
    assert!(
        inputs[48]["path"]
            .as_str()
            .expect("a JSON string")
            .ends_with("population/population.parquet")
    );
    let first = project().join("data-samples/opa/opa_202304.parquet");
    assert_eq!(inputs[0]["path"], first.display().to_string());
    assert_eq!(
        inputs[0]["bytes"],
        std::fs::metadata(&first).expect("a file that exists").len()
    );
    assert_eq!(manifest["rules"][0]["name"], "lower_back_imaging");
    assert_eq!(
        manifest["rules"][0]["version"],
        "last reviewed September 2024"
    );
    assert_eq!(manifest["rules"][0]["effective"], "published January 2020");
    assert_eq!(
        manifest["rules"][0]["sha256"]
            .as_str()
            .expect("a JSON string")
            .len(),
        64
    );
    let queries = manifest["queries"].as_array().expect("a JSON array");
    assert_eq!(queries.len(), report_queries().len());
    let trend = std::fs::read_to_string(out.join("04_national_monthly_trend.csv"))
        .expect("a readable text file");
    assert_eq!(queries[3]["rows"], trend.lines().count() - 1);
    assert_eq!(queries[3]["rows"], 3, "three months asked for");
    let flagged = manifest["rows_flagged"].as_u64().expect("a JSON number");
    assert!(stderr(&output).contains(&format!("{flagged} flagged")));
    // The headline's counts of flagged appointments by commissioner, sex and age band (and by
    // commissioner, and in all) came from the run's one scan of opa, and add up to the
    // appointments the main report counts; its other CTEs referred to more than once ran once,
    // innermost first. The main report is itself one part of that scan, grouped there.
    let parts = |query: &serde_json::Value, key: &str| -> Vec<(String, u64)> {
        let parts = query[key].as_array().expect("a JSON array");
        let part = |c: &serde_json::Value| {
            (
                c["name"].as_str().expect("a JSON string").to_owned(),
                c["rows"].as_u64().expect("a JSON number"),
            )
        };
        parts.iter().map(part).collect()
    };
    assert_eq!(queries[6]["name"], "07_headline");
    let from_scan = parts(&queries[6], "from_shared_scan");
    let names: Vec<&str> = from_scan.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["flagged_bands", "activity", "total"]);
    assert!((1..=flagged).contains(&from_scan[0].1), "{from_scan:?}");
    let headline = std::fs::read_to_string(out.join("07_headline.csv")).expect("a readable file");
    let headline: Vec<Vec<&str>> = headline
        .lines()
        .map(|line| line.split(',').collect())
        .collect();
    assert_eq!(headline[0][1], "flagged");
    assert_eq!(headline[1][1], flagged.to_string());
    let run_once = parts(&queries[6], "ctes_run_once");
    let names: Vec<&str> = run_once.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["population_year", "bands"]);
    assert!(
        parts(&queries[0], "ctes_run_once").is_empty(),
        "01 has no CTE"
    );
    let main_rows = queries[0]["rows"].as_u64().expect("a JSON number");
    assert_eq!(
        parts(&queries[0], "from_shared_scan"),
        [("01_flagged_by_provider_month".to_owned(), main_rows)]
    );
}

#[test]
fn suppressed_reports_publish_no_small_number_and_no_lone_star() {
    let out = scratch("suppress");
    let output = ebiq(&[
        "report",
        "--quiet",
        "--suppress",
        "--out",
        out.to_str().expect("a UTF-8 path"),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let csv = std::fs::read_to_string(out.join("01_flagged_by_provider_month.csv"))
        .expect("a readable text file");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("provider,month,flagged"));
    let cells: Vec<(String, String, String)> = lines
        .map(|line| {
            let parts: Vec<&str> = line.split(',').collect();
            (parts[0].into(), parts[1].into(), parts[2].into())
        })
        .collect();
    let stars = cells.iter().filter(|c| c.2 == "*").count();
    assert!(stars > 0, "the sample has small counts to suppress");
    for (_, _, flagged) in &cells {
        if flagged != "*" {
            let n: u64 = flagged.parse().expect("a number");
            assert!(n == 0 || (n >= 10 && n.is_multiple_of(5)), "published {n}");
        }
    }
    for pick in [
        |c: &(String, String, String)| c.0.clone(),
        |c: &(String, String, String)| c.1.clone(),
    ] {
        // (cells, stars) per provider, then per month; a total over one cell is that cell.
        let mut per_group: std::collections::HashMap<String, (usize, usize)> = Default::default();
        for cell in &cells {
            let group = per_group.entry(pick(cell)).or_default();
            group.0 += 1;
            group.1 += usize::from(cell.2 == "*");
        }
        assert!(
            per_group
                .values()
                .all(|&(cells, stars)| cells == 1 || stars != 1),
            "a lone * can be recovered from a total"
        );
    }
    let share =
        std::fs::read_to_string(out.join("03_flagged_share_of_spine_imaging_by_provider.csv"))
            .expect("a readable text file");
    assert!(
        share
            .lines()
            .skip(1)
            .all(|line| !line.contains('*') || line.matches('*').count() >= 2),
        "a suppressed count's rate is suppressed with it: {share}"
    );
    // The statistics of a suppressed cell (rates, limits, and where it falls) go with it.
    for (file, derived) in [
        (
            "08_provider_funnel.csv",
            &["share", "share_lower95", "funnel_upper998", "outlier"][..],
        ),
        (
            "06_standardised_rates_by_commissioner.csv",
            &["crude_rate", "dsr", "dsr_upper95", "compared_95"][..],
        ),
    ] {
        let csv = std::fs::read_to_string(out.join(file)).expect("a readable text file");
        let mut lines = csv.lines();
        let header = CsvHeader::read(&mut lines);
        let at = |name: &str| header.at(name);
        let mut starred = 0;
        for line in lines {
            let fields: Vec<&str> = line.split(',').collect();
            if fields[at("flagged")] == "*" {
                starred += 1;
                for name in derived {
                    assert_eq!(
                        fields[at(name)],
                        "*",
                        "{file}: {name} of a suppressed cell: {line}"
                    );
                }
            }
        }
        if file.starts_with("08") {
            assert!(starred > 0, "the sample has small providers: {csv}");
        }
    }
}

#[test]
fn a_reader_that_stops_early_is_a_normal_end() {
    // The read end is closed before ebiq writes, so its first write of results finds the pipe
    // broken, whatever the size of the output.
    let mut child = Command::new(env!("CARGO_BIN_EXE_ebiq"))
        .args(["report", "--format", "csv", "--quiet"])
        .current_dir(project())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the process starts");
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("the process ends");
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
}

#[test]
fn rule_files_whose_functions_share_a_name_are_refused_naming_both() {
    let rules = scratch("clashing-rules");
    std::fs::create_dir_all(&rules).expect("a scratch folder");
    let rule = |flag: &str| {
        format!("-- @section code_script\nWHEN opa.Der_Procedure_All LIKE '%W82%' THEN '{flag}'\n")
    };
    // `knee.sql` defines ebi_knee_included; so does `knee_included.sql` (its flag function).
    std::fs::write(rules.join("knee.sql"), rule("knee")).expect("a writable scratch file");
    std::fs::write(rules.join("knee_included.sql"), rule("knee_included"))
        .expect("a writable scratch file");
    let output = ebiq(&[
        "sql",
        "--rules",
        rules.to_str().expect("a UTF-8 path"),
        "SELECT count(*) FROM opa",
    ]);
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("knee.sql"), "{stderr}");
    assert!(stderr.contains("knee_included.sql"), "{stderr}");
    assert!(stderr.contains("ebi_knee_included"), "{stderr}");
    assert!(output.stdout.is_empty());
}
