//! SQL Server `LIKE` patterns: parsing and case-insensitive matching (grammar: [`LikePattern`]).

use std::fmt;

/// A pattern that cannot be compiled, such as one with a `[` that is never closed.
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
            "malformed LIKE pattern '{}': {}",
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
    /// `[...]` or `[^...]`, with members as inclusive ranges of case-folded characters.
    Set {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl CharClass {
    #[inline]
    fn matches(&self, folded: char) -> bool {
        match self {
            CharClass::Any => true,
            CharClass::Char(c) => *c == folded,
            CharClass::Set { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| lo <= folded && folded <= hi) != *negated
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
    /// Compiles `pattern`; a malformed one is an error saying why.
    pub fn compile(pattern: &str) -> Result<Self, PatternError> {
        let tokens = parse(pattern)?;
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
    pub fn matches(&self, text: &str) -> bool {
        if self.matches_untrimmed(text) {
            return true;
        }
        // Trailing blanks in the text are not significant; a pattern ending in `%` already absorbs them.
        let ends_with_any_run = matches!(self.tokens.last(), Some(Token::AnyRun));
        !ends_with_any_run
            && text.ends_with(' ')
            && self.matches_untrimmed(text.trim_end_matches(' '))
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

fn parse(pattern: &str) -> Result<Vec<Token>, PatternError> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '%' => {
                if tokens.last() != Some(&Token::AnyRun) {
                    tokens.push(Token::AnyRun);
                }
            }
            '_' => tokens.push(Token::One(CharClass::Any)),
            '[' => {
                let (class, close) = parse_set(&chars, i).map_err(|message| PatternError {
                    pattern: pattern.to_owned(),
                    message,
                })?;
                tokens.push(Token::One(class));
                i = close;
            }
            c => tokens.push(Token::One(CharClass::Char(fold(c)))),
        }
        i += 1;
    }
    Ok(tokens)
}

/// Parses the set opened by the `[` at `open`; returns it with the index of its closing `]`.
fn parse_set(chars: &[char], open: usize) -> Result<(CharClass, usize), String> {
    let mut j = open + 1;
    let negated = chars.get(j) == Some(&'^');
    if negated {
        j += 1;
    }
    let mut ranges = Vec::new();
    let first_member = j;
    loop {
        let Some(&c) = chars.get(j) else {
            return Err(format!(
                "the '[' at character {} is never closed by ']'",
                open + 1
            ));
        };
        if c == ']' && j > first_member {
            break;
        }
        match (chars.get(j + 1), chars.get(j + 2)) {
            (Some('-'), Some(&hi)) if hi != ']' => {
                ranges.push((fold(c), fold(hi)));
                j += 3;
            }
            _ => {
                ranges.push((fold(c), fold(c)));
                j += 1;
            }
        }
    }
    let class = match ranges.as_slice() {
        [(lo, hi)] if lo == hi && !negated => CharClass::Char(*lo),
        _ => CharClass::Set { negated, ranges },
    };
    Ok((class, j))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn like(text: &str, pattern: &str) -> bool {
        LikePattern::compile(pattern)
            .unwrap_or_else(|e| panic!("{e}"))
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
    fn unclosed_bracket_is_an_error_naming_the_pattern() {
        let error = LikePattern::compile("%U05[45%").expect_err("unclosed set");
        assert_eq!(error.pattern, "%U05[45%");
        assert_eq!(
            error.to_string(),
            "malformed LIKE pattern '%U05[45%': the '[' at character 5 is never closed by ']'"
        );
        assert!(LikePattern::compile("[").is_err());
        assert!(LikePattern::compile("[^]").is_err());
    }

    #[test]
    fn shapes_pick_the_fast_path() {
        let shape = |p: &str| {
            LikePattern::compile(p)
                .map(|c| c.shape().clone())
                .unwrap_or_else(|e| panic!("{e}"))
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
