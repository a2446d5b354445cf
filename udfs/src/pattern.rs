//! SQL Server `LIKE` patterns: parsing and case-insensitive matching (grammar: [`LikePattern`]).

use std::fmt;

use crate::collation::weight;

/// A `LIKE` that SQL Server refuses: an `ESCAPE` that is not one character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    /// The pattern as given.
    pub pattern: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid LIKE pattern '{}': {}",
            self.pattern, self.message
        )
    }
}

impl std::error::Error for PatternError {}

/// Case-folds one character the way a case-insensitive collation compares it.
#[inline]
pub(crate) fn fold(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(single), None) => single,
        _ => c,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum CharClass {
    /// `_`
    Any,
    /// A literal character, case-folded.
    Char(char),
    /// `[...]` or `[^...]`, with members as inclusive ranges of collation weights
    /// ([`weight`]); a range whose ends are reversed (`[c-a]`) holds nothing.
    Set {
        negated: bool,
        ranges: Vec<(u32, u32)>,
    },
}

impl CharClass {
    #[inline]
    fn matches(&self, folded: char) -> bool {
        match self {
            CharClass::Any => true,
            CharClass::Char(c) => *c == folded,
            CharClass::Set { negated, ranges } => {
                let weight = weight(folded);
                ranges.iter().any(|&(lo, hi)| lo <= weight && weight <= hi) != *negated
            }
        }
    }

    /// The ASCII bytes this class accepts, as a bit mask indexed by byte value.
    fn ascii_mask(&self) -> u128 {
        (0u8..128)
            .filter(|&b| self.matches(fold(char::from(b))))
            .fold(0, |mask, b| mask | 1u128 << b)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Token {
    /// `%`
    AnyRun,
    One(CharClass),
}

/// How a pattern is anchored, when it has no `%` other than at its ends; used for fast paths.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Shape {
    /// `body`: the whole text.
    Exact,
    /// `body%`
    Prefix,
    /// `%body`
    Suffix,
    /// `%body%`: anywhere in the text.
    Contains,
    /// Anything with a `%` between two single-character tokens.
    General,
}

/// A compiled SQL Server `LIKE` pattern.
///
/// The grammar is SQL Server's: `%` matches any run of characters (including none), `_` exactly one
/// character, `[abc]` one character from a set, `[a-f]` a range, `[^...]` one character outside the set.
/// Inside brackets every other character is literal, so `[[]`, `[%]` and `[_]` match `[`, `%` and `_`.
/// A `]` straight after `[` or `[^` is a member of the set, and a `-` first or last in a set is literal.
///
/// Matching follows the default collation `SQL_Latin1_General_CP1_CI_AS` on `varchar` data:
/// letters compare case-insensitively (ranges compare case-folded characters), and trailing blanks
/// in the matched text are not significant (`'abc  ' LIKE 'abc'` is true) while those in the pattern are.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LikePattern {
    source: String,
    tokens: Vec<Token>,
    /// For ASCII text: each token's accepted bytes (`None` for `%`).
    ascii_tokens: Vec<Option<u128>>,
    shape: Shape,
    /// For non-general shapes: the accepted bytes of each single-character token, in order.
    body: Vec<u128>,
}

impl LikePattern {
    /// Compiles `pattern` without an escape character. Every pattern compiles: one that SQL
    /// Server would find malformed (a `[` never closed) matches nothing, as there.
    pub fn compile(pattern: &str) -> Result<Self, PatternError> {
        Self::compile_with_escape(pattern, None)
    }

    /// Compiles `pattern` with `LIKE ... ESCAPE 'c'`: in the pattern, `c` makes the character
    /// after it literal (`'10!%' ESCAPE '!'` matches `10%`), in a set too; a `c` that ends the
    /// pattern leaves it matching nothing. `escape` must be one character (SQL Server refuses
    /// `ESCAPE ''` and `ESCAPE 'ab'`); `None` (no ESCAPE, or `ESCAPE NULL`) escapes nothing.
    pub fn compile_with_escape(pattern: &str, escape: Option<&str>) -> Result<Self, PatternError> {
        let escape = match escape.map(|e| {
            let mut chars = e.chars();
            (chars.next(), chars.next())
        }) {
            None => None,
            Some((Some(c), None)) => Some(c),
            Some(_) => {
                return Err(PatternError {
                    pattern: pattern.to_owned(),
                    message: format!(
                        "the escape character '{}' is not one character",
                        escape.unwrap_or_default()
                    ),
                });
            }
        };
        let tokens = parse(pattern, escape).unwrap_or_else(|| vec![Token::One(NOTHING)]);
        let ascii_tokens: Vec<Option<u128>> = tokens
            .iter()
            .map(|t| match t {
                Token::AnyRun => None,
                Token::One(class) => Some(class.ascii_mask()),
            })
            .collect();
        let leading = matches!(tokens.first(), Some(Token::AnyRun));
        let trailing = tokens.len() > 1 && matches!(tokens.last(), Some(Token::AnyRun));
        let inner = &tokens[usize::from(leading)..tokens.len() - usize::from(trailing)];
        let shape = if inner.contains(&Token::AnyRun) {
            Shape::General
        } else {
            match (leading, trailing) {
                (false, false) => Shape::Exact,
                (false, true) => Shape::Prefix,
                (true, false) if tokens.len() == 1 => Shape::Contains, // a lone `%`
                (true, false) => Shape::Suffix,
                (true, true) => Shape::Contains,
            }
        };
        let body = if shape == Shape::General {
            Vec::new()
        } else {
            inner
                .iter()
                .filter_map(|t| match t {
                    Token::One(class) => Some(class.ascii_mask()),
                    Token::AnyRun => None,
                })
                .collect()
        };
        Ok(Self {
            source: pattern.to_owned(),
            tokens,
            ascii_tokens,
            shape,
            body,
        })
    }

    /// The pattern as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub(crate) fn shape(&self) -> &Shape {
        &self.shape
    }

    /// Accepted bytes of each single-character token, for shapes other than [`Shape::General`].
    pub(crate) fn body(&self) -> &[u128] {
        &self.body
    }

    /// Does `text LIKE pattern` hold (for non-NULL text)?
    ///
    /// The text's trailing blanks are not significant: it matches if it does with any number of
    /// them dropped, so `'a  ' LIKE 'a '` holds (the pattern's one blank is significant and the
    /// text has it). A pattern ending in `%` absorbs them anyway.
    pub fn matches(&self, text: &str) -> bool {
        if self.matches_untrimmed(text) {
            return true;
        }
        if matches!(self.tokens.last(), Some(Token::AnyRun)) {
            return false;
        }
        let mut trimmed = text;
        while let Some(shorter) = trimmed.strip_suffix(' ') {
            if self.matches_untrimmed(shorter) {
                return true;
            }
            trimmed = shorter;
        }
        false
    }

    fn matches_untrimmed(&self, text: &str) -> bool {
        if text.is_ascii() {
            self.matches_ascii(text.as_bytes())
        } else {
            self.matches_chars(text)
        }
    }

    fn matches_ascii(&self, text: &[u8]) -> bool {
        let body = &self.body;
        match self.shape {
            Shape::Exact => text.len() == body.len() && body_matches_at(body, text, 0),
            Shape::Prefix => text.len() >= body.len() && body_matches_at(body, text, 0),
            Shape::Suffix => {
                text.len() >= body.len() && body_matches_at(body, text, text.len() - body.len())
            }
            Shape::Contains => contains_ascii(body, text),
            Shape::General => glob_ascii(&self.ascii_tokens, text),
        }
    }

    /// Backtracking glob over characters: every token but `%` consumes exactly one character, so
    /// resuming from the most recent `%` is enough.
    fn matches_chars(&self, text: &str) -> bool {
        let tokens = &self.tokens;
        let (mut t, mut p) = (0usize, 0usize);
        let mut resume: Option<(usize, usize)> = None;
        while t < text.len() {
            let Some(c) = text[t..].chars().next() else {
                break;
            };
            match tokens.get(p) {
                Some(Token::AnyRun) => {
                    p += 1;
                    resume = Some((p, t));
                    continue;
                }
                Some(Token::One(class)) if class.matches(fold(c)) => {
                    p += 1;
                    t += c.len_utf8();
                    continue;
                }
                _ => {}
            }
            let Some((after_run, run_end)) = resume else {
                return false;
            };
            let skipped = text[run_end..].chars().next().map_or(1, char::len_utf8);
            p = after_run;
            t = run_end + skipped;
            resume = Some((after_run, t));
        }
        tokens[p..].iter().all(|token| *token == Token::AnyRun)
    }
}

/// Do the bytes from `at` on match `body`'s classes? A byte of a multi-byte character matches none.
#[inline]
fn body_matches_at(body: &[u128], text: &[u8], at: usize) -> bool {
    body.iter().zip(&text[at..]).all(|(mask, &byte)| {
        mask.checked_shr(u32::from(byte))
            .is_some_and(|m| m & 1 == 1)
    })
}

fn contains_ascii(body: &[u128], text: &[u8]) -> bool {
    let Some((&first, _)) = body.split_first() else {
        return true;
    };
    if text.len() < body.len() {
        return false;
    }
    (0..=text.len() - body.len())
        .any(|at| first >> text[at] & 1 == 1 && body_matches_at(body, text, at))
}

fn glob_ascii(tokens: &[Option<u128>], text: &[u8]) -> bool {
    let (mut t, mut p) = (0usize, 0usize);
    let mut resume: Option<(usize, usize)> = None;
    while t < text.len() {
        match tokens.get(p) {
            Some(None) => {
                p += 1;
                resume = Some((p, t));
                continue;
            }
            Some(Some(mask)) if mask >> text[t] & 1 == 1 => {
                p += 1;
                t += 1;
                continue;
            }
            _ => {}
        }
        let Some((after_run, run_end)) = resume else {
            return false;
        };
        p = after_run;
        t = run_end + 1;
        resume = Some((after_run, t));
    }
    tokens[p..].iter().all(Option::is_none)
}

/// A class no character is in: what a pattern SQL Server cannot parse is made of.
const NOTHING: CharClass = CharClass::Set {
    negated: false,
    ranges: Vec::new(),
};

/// The tokens of `pattern`; `None` when SQL Server would match nothing with it: a `[` that is
/// never closed, or an escape character that ends the pattern.
fn parse(pattern: &str, escape: Option<char>) -> Option<Vec<Token>> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            c if Some(c) == escape => {
                i += 1;
                tokens.push(Token::One(CharClass::Char(fold(*chars.get(i)?))));
            }
            '%' => {
                if tokens.last() != Some(&Token::AnyRun) {
                    tokens.push(Token::AnyRun);
                }
            }
            '_' => tokens.push(Token::One(CharClass::Any)),
            '[' => {
                let (class, close) = parse_set(&chars, i, escape)?;
                tokens.push(Token::One(class));
                i = close;
            }
            c => tokens.push(Token::One(CharClass::Char(fold(c)))),
        }
        i += 1;
    }
    Some(tokens)
}

/// Parses the set opened by the `[` at `open`; returns it with the index of its closing `]`, or
/// `None` if nothing closes it.
fn parse_set(chars: &[char], open: usize, escape: Option<char>) -> Option<(CharClass, usize)> {
    let mut j = open + 1;
    let negated = chars.get(j) == Some(&'^');
    if negated {
        j += 1;
    }
    // Members as (character, escaped), so that an escaped `]` or `-` is only a member.
    let mut members = Vec::new();
    let first_member = j;
    loop {
        let c = *chars.get(j)?;
        if Some(c) == escape {
            members.push((*chars.get(j + 1)?, true));
            j += 2;
            continue;
        }
        if c == ']' && j > first_member {
            break;
        }
        members.push((c, false));
        j += 1;
    }
    let mut ranges = Vec::new();
    let mut m = 0;
    while m < members.len() {
        let (c, _) = members[m];
        match (members.get(m + 1), members.get(m + 2)) {
            (Some(('-', false)), Some(&(hi, _))) => {
                ranges.push((weight(fold(c)), weight(fold(hi))));
                m += 3;
            }
            _ => {
                let w = weight(fold(c));
                ranges.push((w, w));
                m += 1;
            }
        }
    }
    let class = match (members.as_slice(), negated) {
        ([(c, _)], false) => CharClass::Char(fold(*c)),
        _ => CharClass::Set { negated, ranges },
    };
    Some((class, j))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn like(text: &str, pattern: &str) -> bool {
        LikePattern::compile(pattern)
            .expect("a valid pattern")
            .matches(text)
    }

    #[test]
    fn wildcards_sets_and_ranges() {
        let cases: &[(&str, &str, bool)] = &[
            ("U054", "%U05[45]%", true),
            ("U055", "%U05[45]%", true),
            ("U056", "%U05[45]%", false),
            ("X621,U054,Z665", "%U05[45]%", true),
            ("u054", "%U05[45]%", true),
            ("U0545", "%U05[45]%", true),
            ("", "%U05[45]%", false),
            ("", "%", true),
            ("", "", true),
            ("a", "", false),
            ("abc", "a_c", true),
            ("ac", "a_c", false),
            ("abbc", "a_c", false),
            ("C50", "%C[0-9][0-9]%", true),
            ("C5X", "%C[0-9][0-9]%", false),
            ("D3A", "%D3[^789]%", true),
            ("D37", "%D3[^789]%", false),
            ("[x", "[[]x", true),
            ("100%", "100[%]", true),
            ("1000", "100[%]", false),
            ("a_b", "a[_]b", true),
            ("axb", "a[_]b", false),
            ("-", "[-a]", true),
            ("-", "[a-]", true),
            ("]", "[]]", true),
            ("B", "[a-c]", true),
            ("b", "[A-C]", true),
            ("d", "[a-c]", false),
            ("abcabd", "%ab_", true),
            ("aXbXc", "a%b%c", true),
            ("aXbXd", "a%b%c", false),
            ("mississippi", "%iss%ip%", true),
            ("abc  ", "abc", true),
            ("abc", "abc ", false),
            ("abc ", "abc ", true),
            ("abc ", "ab_", true),
            ("ÉCOLE", "%école%", true),
            ("café", "caf_", true),
            ("café", "caf[é]", true),
            ("café", "caf[^é]", false),
            ("naïve", "na_ve", true),
        ];
        for &(text, pattern, expected) in cases {
            assert_eq!(like(text, pattern), expected, "'{text}' LIKE '{pattern}'");
        }
    }

    #[test]
    fn a_pattern_sql_server_cannot_parse_matches_nothing() {
        for pattern in ["[", "[^]", "%U05[45%", "a[%", "[%", "abc!"] {
            let compiled =
                LikePattern::compile_with_escape(pattern, Some("!")).expect("one-character escape");
            for text in ["", "a", "abc", "a[b", "U054", "[", "abc!"] {
                assert!(
                    !compiled.matches(text),
                    "'{text}' LIKE '{pattern}' ESCAPE '!'"
                );
            }
        }
    }

    #[test]
    fn ranges_follow_the_collation_not_code_points() {
        let cases: &[(&str, &str, bool)] = &[
            ("=", "[0-a]", false),
            ("A", "[0-a]", true),
            ("5", "[0-a]", true),
            ("á", "[0-a]", false),
            ("á", "[a-b]", true),
            ("Ñ", "[a-z]", true),
            ("_", "[0-9]", false),
            ("_", "[!-~]", true),
            ("b", "[c-a]", false),
        ];
        for &(text, pattern, expected) in cases {
            assert_eq!(like(text, pattern), expected, "'{text}' LIKE '{pattern}'");
        }
    }

    #[test]
    fn the_texts_trailing_blanks_may_go_the_patterns_stay() {
        assert!(like("a  ", "a "));
        assert!(like("a  ", "a"));
        assert!(like("a ", "a_"));
        assert!(!like("a", "a "));
        assert!(!like(" a", "a"));
        assert!(like("a   b  ", "a%b"));
    }

    #[test]
    fn escape_makes_the_next_character_literal_in_and_out_of_sets() {
        let like_escaped = |text: &str, pattern: &str| {
            LikePattern::compile_with_escape(pattern, Some("!"))
                .expect("one-character escape")
                .matches(text)
        };
        assert!(like_escaped("10%", "10!%"));
        assert!(!like_escaped("100", "10!%"));
        assert!(like_escaped("a_b", "a!_b"));
        assert!(!like_escaped("axb", "a!_b"));
        assert!(like_escaped("[x]", "![x!]"));
        assert!(like_escaped("!", "!!"));
        assert!(like_escaped("]", "[!]]"));
        assert!(like_escaped("-", "[a!-c]") && !like_escaped("b", "[a!-c]"));
        assert!(like_escaped("ab", "a!b"));
        for escape in ["", "ab"] {
            let error =
                LikePattern::compile_with_escape("a", Some(escape)).expect_err("not one character");
            assert!(error.to_string().contains("not one character"), "{error}");
        }
    }

    #[test]
    fn shapes_pick_the_fast_path() {
        let shape = |p: &str| {
            LikePattern::compile(p)
                .map(|c| c.shape().clone())
                .expect("a valid pattern")
        };
        assert_eq!(shape("%U05[45]%"), Shape::Contains);
        assert_eq!(shape("%%U05%%"), Shape::Contains);
        assert_eq!(shape("%"), Shape::Contains);
        assert_eq!(shape("U05%"), Shape::Prefix);
        assert_eq!(shape("%U05"), Shape::Suffix);
        assert_eq!(shape("U05"), Shape::Exact);
        assert_eq!(shape("U%5"), Shape::General);
    }
}
