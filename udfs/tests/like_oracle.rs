//! `tsql_like` and the fused matcher against an independent oracle: each random LIKE pattern is
//! translated to a `regex` (case-insensitive, `%` as `.*`, `_` as `.`, sets as classes listing
//! the characters a hand-written collation order puts in each range), and the trailing-blank rule
//! is applied by the oracle itself.

mod common;

use arrow::array::AsArray;
use common::{STRING_TYPES, invoke, invoke_values, strings};
use datafusion_common::ScalarValue;
use datafusion_expr::ColumnarValue;
use ebiq_udfs::{LikePattern, NullMode, PatternSet, TsqlLike};
use proptest::prelude::*;
use regex::Regex;

/// Characters for texts: letters in both cases, digits, LIKE's own symbols, blanks and accents.
const TEXT_CHARS: &[char] = &[
    'a', 'b', 'c', 'A', 'B', 'C', 'u', 'U', '0', '4', '5', '9', ',', ' ', '%', '_', '[', ']', '-',
    '^', 'é', 'É', 'ß',
];
/// Characters for set members, and ranges, within a kind and across kinds.
const SET_CHARS: &[char] = &['a', 'b', 'C', '0', '5', '%', '_', '[', 'é'];
const RANGES: &[(char, char)] = &[
    ('a', 'c'),
    ('B', 'C'),
    ('0', '4'),
    ('5', '9'),
    ('c', 'a'),
    ('0', 'a'),
    ('-', '5'),
    ('_', 'b'),
    ('a', 'z'),
    ('9', '%'),
];

/// `SQL_Latin1_General_CP1_CI_AS`'s order of every character above, written out by hand from
/// what Microsoft documents (marks before digits before letters, case ignored, an accented letter
/// after its base): each entry is one place; characters in one entry are equal.
const COLLATION_ORDER: &[&str] = &[
    " ", "%", ",", "-", "[", "]", "^", "_", "0", "4", "5", "9", "aA", "bB", "cC", "éÉ", "ß", "uU",
    "z",
];

fn place(c: char) -> usize {
    COLLATION_ORDER
        .iter()
        .position(|entry| entry.contains(c))
        .unwrap_or_else(|| panic!("{c} has no place in COLLATION_ORDER"))
}

fn hex(c: char) -> String {
    format!("\\x{{{:X}}}", u32::from(c))
}

/// The oracle's own reading of a LIKE pattern, from the grammar, as a regex; `None` for a pattern
/// with a `[` never closed, which matches nothing.
fn oracle_regex(pattern: &str) -> Option<Regex> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut re = String::from("(?s)(?i)^");
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '%' => re.push_str(".*"),
            '_' => re.push('.'),
            '[' => {
                let mut j = i + 1;
                let negated = chars.get(j) == Some(&'^');
                if negated {
                    j += 1;
                }
                let start = j;
                let mut class = String::new();
                while *chars.get(j)? != ']' || j == start {
                    if chars.get(j + 1) == Some(&'-') && chars.get(j + 2).is_some_and(|&c| c != ']')
                    {
                        let (lo, hi) = (place(chars[j]), place(chars[j + 2]));
                        for entry in COLLATION_ORDER.iter().take(hi + 1).skip(lo) {
                            class.extend(entry.chars().map(hex));
                        }
                        j += 3;
                    } else {
                        class.push_str(&hex(chars[j]));
                        j += 1;
                    }
                }
                re.push_str(&match (negated, class.is_empty()) {
                    (false, true) => "[^\\x{0}-\\x{10FFFF}]".to_owned(),
                    (true, true) => ".".to_owned(),
                    (false, false) => format!("[{class}]"),
                    (true, false) => format!("[^{class}]"),
                });
                i = j;
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
        i += 1;
    }
    re.push('$');
    Some(Regex::new(&re).expect("a valid value"))
}

/// The text matches with any number of its trailing blanks dropped.
fn oracle(text: &str, pattern: &str) -> bool {
    let Some(re) = oracle_regex(pattern) else {
        return false;
    };
    let kept = text.trim_end_matches(' ').len();
    (kept..=text.len()).any(|end| re.is_match(&text[..end]))
}

fn text() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(TEXT_CHARS), 0..14)
        .prop_map(|chars| chars.into_iter().collect())
}

fn set() -> impl Strategy<Value = String> {
    let member = prop_oneof![
        proptest::sample::select(SET_CHARS).prop_map(String::from),
        proptest::sample::select(RANGES).prop_map(|(lo, hi)| format!("{lo}-{hi}")),
    ];
    (
        any::<bool>(),
        proptest::collection::vec(member, 1..4),
        any::<bool>(),
    )
        .prop_map(|(negated, members, trailing_dash)| {
            let caret = if negated { "^" } else { "" };
            let dash = if trailing_dash { "-" } else { "" };
            format!("[{caret}{}{dash}]", members.concat())
        })
}

fn pattern() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        3 => proptest::sample::select(&['a', 'B', 'u', '0', '5', ',', ' ', 'é', 'ß'][..]).prop_map(String::from),
        2 => Just("%".to_owned()),
        1 => Just("_".to_owned()),
        2 => set(),
        1 => Just("[".to_owned()),
    ];
    proptest::collection::vec(token, 0..7).prop_map(|tokens| tokens.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn like_agrees_with_the_oracle(text in text(), pattern in pattern()) {
        let compiled = LikePattern::compile(&pattern).expect("a valid pattern");
        prop_assert_eq!(compiled.matches(&text), oracle(&text, &pattern), "'{}' LIKE '{}'", text, pattern);
    }

    #[test]
    fn fused_bits_agree_with_the_oracle(
        texts in proptest::collection::vec(text(), 1..8),
        patterns in proptest::collection::vec(pattern().prop_map(|p| format!("%{p}%")), 1..6),
    ) {
        let compiled = patterns.iter().map(|p| LikePattern::compile(p).expect("a valid pattern")).collect();
        let set = PatternSet::new(compiled).expect("a valid value");
        for text in &texts {
            let found = set.matches(text);
            for (index, pattern) in patterns.iter().enumerate() {
                prop_assert_eq!(found >> index & 1 == 1, oracle(text, pattern), "'{}' LIKE '{}'", text, pattern);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn the_udf_agrees_with_the_oracle_in_every_encoding(
        texts in proptest::collection::vec(proptest::option::weighted(0.9, text()), 1..20),
        pattern in pattern(),
    ) {
        let function = TsqlLike::new();
        let rows: Vec<Option<&str>> = texts.iter().map(Option::as_deref).collect();
        let patterns = vec![Some(pattern.as_str()); rows.len()];
        for encoding in STRING_TYPES {
            let expected: Vec<Option<bool>> = rows.iter().map(|t| t.map(|t| oracle(t, &pattern))).collect();
            // The pattern as a column, and as the scalar DataFusion passes for a literal.
            let column = invoke(&function, vec![strings(encoding, &rows), strings("Utf8", &patterns)], NullMode::Intended);
            let actual: Vec<Option<bool>> = column.as_boolean().iter().collect();
            prop_assert_eq!(&actual, &expected, "{} LIKE column '{}'", encoding, pattern);
            let literal = ColumnarValue::Scalar(ScalarValue::Utf8(Some(pattern.clone())));
            let text = ColumnarValue::Array(strings(encoding, &rows));
            let scalar = invoke_values(&function, vec![text, literal], rows.len(), NullMode::Intended);
            let actual: Vec<Option<bool>> = scalar.as_boolean().iter().collect();
            prop_assert_eq!(&actual, &expected, "{} LIKE literal '{}'", encoding, pattern);
        }
    }
}

#[test]
fn the_oracle_reads_the_grammar_as_documented() {
    assert!(oracle("U054", "%u05[45]%"));
    assert!(!oracle("U056", "%U05[45]%"));
    assert!(oracle("abc  ", "abc"));
    assert!(!oracle("abc", "abc "));
    assert!(oracle("]", "[]]"));
    assert!(oracle("-", "[a-]"));
    assert!(!oracle("b", "[c-a]"));
}
