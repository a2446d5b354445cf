//! Rule files: a new file is a new set of functions; a broken one is an error naming file and line.

use std::sync::Arc;

use datafusion_expr::ScalarUDFImpl;
use ebiq_udfs::{builtin_rules, load_rules, parse_rule_file, rule_functions};

fn error_of(file: &str, text: &str) -> String {
    parse_rule_file(file, text)
        .expect_err("refused")
        .to_string()
}

#[test]
fn the_built_in_rule_is_the_published_script() {
    let rules = builtin_rules().expect("the built-in rules load");
    let rule = rules
        .iter()
        .find(|r| r.name == "lower_back_imaging")
        .expect("the item is present");
    assert_eq!(rule.flag, "2S_lower_back_imaging");
    assert_eq!(rule.title.as_deref(), Some("Low back pain imaging"));
    assert_eq!(
        rule.version.as_deref(),
        Some("last reviewed September 2024")
    );
    assert_eq!(rule.effective.as_deref(), Some("published January 2020"));
    assert_eq!(
        rule.edition(),
        "version last reviewed September 2024, effective published January 2020"
    );
    // Pasted as published: the typographic quotes are still in the file.
    assert!(rule.source.contains("'%U05[45]%\u{2019}"));
    assert!(
        rule.source
            .contains("\u{2014} Private Appointment Exclusion")
    );
    let patterns: Vec<_> = rule.columns[0]
        .patterns
        .patterns()
        .iter()
        .map(|p| p.source())
        .collect();
    assert_eq!(
        patterns,
        [
            "%U05[45]%",
            "%U13[2356]%",
            "%U21[1267]%",
            "%Z665%",
            "%O162%"
        ]
    );
    let diagnosis = rule
        .columns
        .iter()
        .find(|c| c.name == "der_diagnosis_all")
        .expect("the item is present");
    assert_eq!(diagnosis.qualifiers, ["apcs"]);
    assert_eq!(diagnosis.patterns.patterns().len(), 4);
}

#[test]
fn a_new_rule_file_becomes_new_functions() {
    let folder = tempfile::tempdir().expect("a temporary folder");
    let dir = folder.path();
    std::fs::write(
        dir.join("knee_arthroscopy.sql"),
        "-- @title Knee arthroscopy\n-- @section code_script\n\
         WHEN apc.Der_Procedure_All like '%W85[0-9]%' AND apc.Age BETWEEN 19 AND 120\n\
         THEN '1K_knee'\n",
    )
    .expect("a writable scratch file");
    std::fs::write(dir.join("notes.txt"), "not a rule").expect("a writable scratch file");
    let rules = load_rules(dir).expect("the rule files load");
    assert_eq!(rules.len(), 1);
    let names: Vec<String> = rule_functions(Arc::clone(&rules[0]))
        .iter()
        .map(|f| f.name().to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "ebi_knee_arthroscopy",
            "ebi_knee_arthroscopy_included",
            "ebi_knee_arthroscopy_included_by_der_procedure_all",
            "ebi_knee_arthroscopy_included_by_age"
        ]
    );
}

#[test]
fn a_syntax_error_names_the_file_line_and_what_was_expected() {
    let text =
        "-- @section code_script\nWHEN opa.x like '%a%'\nAND opa.y between 19 120\nTHEN 'f'\n";
    let error = error_of("rules/broken.sql", text);
    assert!(error.starts_with("rules/broken.sql:3:"), "{error}");
    assert!(error.contains("Expected: AND"), "{error}");
}

#[test]
fn a_missing_then_is_reported_at_the_end_of_the_section() {
    let error = error_of("r.sql", "-- @section code_script\nWHEN opa.x like '%a%'\n");
    assert!(error.starts_with("r.sql:2:"), "{error}");
    assert!(error.contains("Expected: THEN"), "{error}");
    assert!(error.contains("end of section 'code_script'"), "{error}");
}

#[test]
fn an_invalid_escape_names_its_place() {
    let error = error_of(
        "r.sql",
        "-- @section code_script\nWHEN x like '%U05!%%' ESCAPE '!!' THEN 'f'\n",
    );
    assert_eq!(
        error,
        "r.sql:2:13: invalid LIKE pattern '%U05!%%': the escape character '!!' is not one character"
    );
}

#[test]
fn a_pattern_sql_server_cannot_parse_is_a_clause_that_matches_nothing() {
    // As on SQL Server: an unclosed '[' is no error, and the LIKE is false for every text.
    let rule = parse_rule_file(
        "r.sql",
        "-- @section code_script\nWHEN x like '%U05[45%' OR x like '%Z66[5%' THEN 'f'\n",
    )
    .expect("a valid rule file");
    let patterns = rule.columns[0].patterns.patterns();
    assert_eq!(patterns.len(), 2);
    for text in ["U054", "%U05[45%", "U05[", "", "Z66[5"] {
        assert!(patterns.iter().all(|p| !p.matches(text)), "{text}");
    }
}

#[test]
fn like_escape_in_a_rule_file_makes_the_next_character_literal() {
    let rule = parse_rule_file(
        "r.sql",
        "-- @section code_script\nWHEN x like '%10!%%' ESCAPE '!' AND x NOT LIKE '%!_%' ESCAPE '!' THEN 'f'\n",
    )
    .expect("a valid rule file");
    let patterns = rule.columns[0].patterns.patterns();
    assert!(patterns[0].matches("a 10% rise") && !patterns[0].matches("a 100 rise"));
    assert!(patterns[1].matches("a_b") && !patterns[1].matches("ab"));
}

#[test]
fn unsupported_sql_is_refused_with_what_is_supported() {
    let error = error_of(
        "r.sql",
        "-- @section code_script\nWHEN upper(x) = 'A' THEN 'f'\n",
    );
    assert!(error.starts_with("r.sql:2:6:"), "{error}");
    assert!(error.contains("expected a column name"), "{error}");
    let error = error_of("r.sql", "-- @section code_script\nWHEN x > 3 THEN 'f'\n");
    assert!(error.contains("unsupported operator >"), "{error}");
    let error = error_of(
        "r.sql",
        "-- @section code_script\nWHEN x like '%a%' AND x between 1 and 2 THEN 'f'\n",
    );
    assert!(
        error.contains("column x is used as number here but as text elsewhere"),
        "{error}"
    );
}

#[test]
fn file_structure_errors() {
    assert!(
        error_of("r.sql", "WHEN x like 'a' THEN 'f'")
            .contains("r.sql:1: expected '-- @section code_script'")
    );
    assert!(
        error_of("r.sql", "-- @section exclusions\nx like 'a'\n")
            .contains("expected a '-- @section code_script' line")
    );
    assert!(error_of("r.sql", "-- @section other\n").contains("r.sql:1: unknown section 'other'"));
    assert!(error_of("r.sql", "-- @owner me\n").contains("unknown directive '@owner'"));
    assert!(error_of("bad-name.sql", "").contains("file name must be a rule name"));
    let twice = "-- @section code_script\nWHEN x like 'a' THEN 'f'\n-- @section code_script\n";
    assert!(error_of("r.sql", twice).contains("r.sql:3: a second '@section code_script'"));
    let no_then_string = "-- @section code_script\nWHEN x like 'a' THEN 3\n";
    assert!(error_of("r.sql", no_then_string).contains("expected a string after THEN"));
    let trailing =
        "-- @section exclusions\nx like 'a' y\n-- @section code_script\nWHEN x like 'a' THEN 'f'\n";
    assert!(
        error_of("r.sql", trailing)
            .contains("r.sql:2:12: expected the end of the expression, found 'y'")
    );
}
