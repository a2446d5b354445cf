//! The population table as analysts have it: ONS long-form CSV with single years of age and sex in
//! words, summed into ESP 2013 bands; and a dataset whose activity files predate `Sex`, which still
//! runs its report, the standardised-rate queries skipped with a note.

mod common;

use std::path::Path;

use common::{ebiq, ebiq_ok, scratch, stderr};

/// A dataset folder whose `opa/` holds `select` over the sample's outpatient table.
fn dataset_with_opa(name: &str, select: &str) -> common::Scratch {
    let dir = scratch(name);
    std::fs::create_dir_all(dir.join("opa")).expect("a scratch folder");
    let copy = format!(
        "COPY ({select}) TO '{}'",
        dir.join("opa/opa.parquet").display()
    );
    ebiq_ok(&["sql", &copy]);
    dir
}

fn csv_lines(output: &std::process::Output) -> Vec<String> {
    String::from_utf8(output.stdout.clone())
        .expect("UTF-8 output")
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn ons_csv_with_single_years_and_worded_sex_is_summed_into_bands() {
    let dir = dataset_with_opa("population-csv", "SELECT * FROM opa LIMIT 100");
    std::fs::create_dir_all(dir.join("population")).expect("a scratch folder");
    let mut csv = String::from("Area_Code,Area_Name,Year,Sex,Age,Population\n");
    for age in 35..=39 {
        csv.push_str(&format!("Q01,North,2024,Male,{age},100\n"));
        csv.push_str(&format!("Q01,North,2024,F,{age},110\n"));
        // ONS files often carry totals too: never counted twice.
        csv.push_str(&format!("Q01,North,2024,Persons,{age},210\n"));
    }
    csv.push_str("Q01,North,2024,2,90+,40\nQ01,North,2024,2,95,7\n");
    std::fs::write(dir.join("population/mid_2024.csv"), csv).expect("a writable scratch file");
    let output = ebiq_ok(&[
        "sql",
        "--format",
        "csv",
        "--data",
        dir.to_str().expect("a UTF-8 path"),
        "SELECT area_code, area_name, year, sex, age_band, population FROM population \
         ORDER BY sex, age_band",
    ]);
    assert_eq!(
        csv_lines(&output),
        [
            "area_code,area_name,year,sex,age_band,population",
            "Q01,North,2024,1,35-39,500",
            "Q01,North,2024,2,35-39,550",
            "Q01,North,2024,2,90+,47",
        ]
    );
}

#[test]
fn population_files_without_a_needed_column_are_refused_naming_it() {
    let dir = dataset_with_opa("population-bad", "SELECT * FROM opa LIMIT 10");
    std::fs::create_dir_all(dir.join("population")).expect("a scratch folder");
    std::fs::write(
        dir.join("population/p.csv"),
        "area_code,year,age,population\nQ01,2024,37,5\n",
    )
    .expect("a writable scratch file");
    let output = ebiq(&[
        "sql",
        "--data",
        dir.to_str().expect("a UTF-8 path"),
        "SELECT 1",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("no column sex") && message.contains("population"),
        "{message}"
    );
}

#[test]
fn activity_without_sex_still_runs_the_report_and_skips_the_standardised_rates() {
    let dir = dataset_with_opa("no-sex", "SELECT * EXCEPT (sex) FROM opa");
    let population = Path::new(env!("CARGO_MANIFEST_DIR")).join("data-samples/population");
    std::fs::create_dir_all(dir.join("population")).expect("a scratch folder");
    std::fs::copy(
        population.join("population.parquet"),
        dir.join("population/population.parquet"),
    )
    .expect("a copyable file");
    let out = dir.join("out");
    let output = ebiq(&[
        "report",
        "--quiet",
        "--data",
        dir.to_str().expect("a UTF-8 path"),
        "--out",
        out.to_str().expect("a UTF-8 path"),
    ]);
    let message = stderr(&output);
    assert!(output.status.success(), "{message}");
    for skipped in ["06_standardised_rates_by_commissioner", "07_headline"] {
        assert!(
            message.contains(&format!(
                "skipped {skipped}: the opa table has no column sex"
            )),
            "{message}"
        );
        assert!(!out.join(format!("{skipped}.csv")).exists());
    }
    assert!(
        message.contains("7 queries over 60000 outpatient rows"),
        "{message}"
    );
    assert!(out.join("08_provider_funnel.csv").exists());
}
