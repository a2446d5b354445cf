//! Fuzzing by property test: the rule-file parser and the LIKE compiler meet arbitrary input and
//! answer with a value or an error, never a panic. Inputs are drawn both from all of Unicode and
//! from the grammar's own pieces, which reach deeper than random text does.
//!
//! More cases: `PROPTEST_CASES=100000 cargo test -p ebiq-udfs --test no_panic --release`.

use ebiq_udfs::{LikePattern, parse_rule_file};
use proptest::prelude::*;

fn like_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "%", "_", "[", "]", "[^", "^", "-", "[a-", "a-]", "[]", "[]]", "[[]", "[%]", "U05",
            "é", "\u{130}", "ß", " ", "\u{0}",
        ])
        .prop_map(str::to_owned),
        any::<char>().prop_map(String::from),
    ]
}

fn rule_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "-- @title T\n",
            "-- @section code_script\n",
            "-- @section exclusions\n",
            "-- @section other\n",
            "WHEN ",
            "THEN '2S_x'",
            " AND ",
            " OR ",
            " NOT ",
            "(",
            ")",
            "opa.Der_Procedure_All LIKE '%U05[45]%'",
            "apcs.Der_Diagnosis_All NOT LIKE 'C%'",
            " LIKE '[' ",
            "ISNULL(a.Age, b.Age) BETWEEN 19 AND 120",
            "x IS NULL",
            "Administrative_Category <> '02'",
            "\u{2018}",
            "\u{2019}",
            "\u{2014}",
            "'",
            "\n",
            ";",
            "CASE ",
            " END",
            "1e999",
            "-",
        ])
        .prop_map(str::to_owned),
        any::<char>().prop_map(String::from),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_like_pattern_compiles_or_is_refused(
        pieces in prop::collection::vec(like_piece(), 0..12),
        text in any::<String>(),
    ) {
        let pattern = pieces.concat();
        if let Ok(compiled) = LikePattern::compile(&pattern) {
            let _ = compiled.matches(&text);
            let _ = compiled.matches(&pattern);
        }
    }

    #[test]
    fn any_unicode_pattern_compiles_or_is_refused(pattern in any::<String>()) {
        let _ = LikePattern::compile(&pattern).map(|p| p.matches(&pattern));
    }

    #[test]
    fn any_rule_file_parses_or_is_refused(pieces in prop::collection::vec(rule_piece(), 0..30)) {
        let text = pieces.concat();
        if let Err(error) = parse_rule_file("fuzz.sql", &text) {
            // A refusal names the file.
            prop_assert!(error.to_string().starts_with("fuzz.sql"), "{}", error);
        }
    }

    #[test]
    fn any_unicode_rule_file_parses_or_is_refused(text in any::<String>()) {
        let _ = parse_rule_file("fuzz.sql", &text);
    }
}
