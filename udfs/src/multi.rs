//! Several `LIKE` patterns over one column, answered in a single pass over each string.
//!
//! Every `%body%` pattern whose body is single-character classes joins one scan: a 256-entry table
//! says which patterns can start at each byte, so the scan looks up one table entry per byte and
//! checks a pattern's remaining classes only where it can start. Patterns of other shapes, and
//! text that is not ASCII, fall back to each pattern's own matcher.

use crate::pattern::{LikePattern, Shape, body_matches_at};

/// The most patterns one set answers at once: one bit each in the result.
pub const MAX_PATTERNS: usize = 64;

/// A set of compiled patterns; [`PatternSet::matches`] returns a bit per pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PatternSet {
    patterns: Vec<LikePattern>,
    /// For each byte, the `Contains` patterns whose first class accepts it.
    starts: Vec<u64>,
    /// `Contains` patterns with an empty body: they match any text.
    always: u64,
    /// All `Contains` patterns.
    scanned: u64,
}

impl PatternSet {
    /// Builds the set; returns `None` when there are more than [`MAX_PATTERNS`] patterns.
    pub fn new(patterns: Vec<LikePattern>) -> Option<Self> {
        if patterns.len() > MAX_PATTERNS {
            return None;
        }
        let mut starts = vec![0u64; 256];
        let (mut always, mut scanned) = (0u64, 0u64);
        for (index, pattern) in patterns.iter().enumerate() {
            if *pattern.shape() != Shape::Contains {
                continue;
            }
            let bit = 1u64 << index;
            scanned |= bit;
            match pattern.body().first() {
                None => always |= bit,
                Some(first) => {
                    for (byte, start) in starts.iter_mut().enumerate().take(128) {
                        if first >> byte & 1 == 1 {
                            *start |= bit;
                        }
                    }
                }
            }
        }
        Some(Self {
            patterns,
            starts,
            always,
            scanned,
        })
    }

    pub fn patterns(&self) -> &[LikePattern] {
        &self.patterns
    }

    /// Bit `i` is set when `text LIKE patterns[i]`.
    pub fn matches(&self, text: &str) -> u64 {
        if !text.is_ascii() {
            return self.matches_one_by_one(text, u64::MAX);
        }
        let found = self.scan_ascii(text.as_bytes());
        found | self.matches_one_by_one(text, !self.scanned)
    }

    fn matches_one_by_one(&self, text: &str, which: u64) -> u64 {
        self.patterns
            .iter()
            .enumerate()
            .filter(|&(index, pattern)| which >> index & 1 == 1 && pattern.matches(text))
            .fold(0, |found, (index, _)| found | 1u64 << index)
    }

    fn scan_ascii(&self, text: &[u8]) -> u64 {
        let mut found = self.always;
        if found == self.scanned {
            return found;
        }
        for (at, &byte) in text.iter().enumerate() {
            let mut candidates = self.starts[usize::from(byte)] & !found;
            while candidates != 0 {
                let index = candidates.trailing_zeros() as usize;
                candidates &= candidates - 1;
                let body = self.patterns[index].body();
                if at + body.len() <= text.len() && body_matches_at(&body[1..], text, at + 1) {
                    found |= 1u64 << index;
                }
            }
            if found == self.scanned {
                break;
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(patterns: &[&str]) -> PatternSet {
        let compiled = patterns
            .iter()
            .map(|p| LikePattern::compile(p).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        PatternSet::new(compiled).unwrap_or_else(|| panic!("too many patterns"))
    }

    #[test]
    fn each_bit_agrees_with_the_single_pattern_matcher() {
        let patterns = [
            "%U05[45]%",
            "%U13[2356]%",
            "%U21[1267]%",
            "%Z665%",
            "%O162%",
            "U05%",
            "%Z665",
            "%",
            "%a%b%",
            "%_5%",
        ];
        let set = set(&patterns);
        let texts = [
            "",
            "U054",
            "u054,z665",
            "X621,U132,O162",
            "U211,Z66",
            "U0545",
            "Z665,U05",
            "ab",
            "5",
            "é5,U054",
            "U055 ",
        ];
        for text in texts {
            let found = set.matches(text);
            for (index, pattern) in set.patterns().iter().enumerate() {
                assert_eq!(
                    found >> index & 1 == 1,
                    pattern.matches(text),
                    "'{text}' LIKE '{}'",
                    pattern.source()
                );
            }
        }
    }

    #[test]
    fn too_many_patterns_is_refused() {
        let compiled = vec![LikePattern::compile("%a%").ok(); MAX_PATTERNS + 1]
            .into_iter()
            .flatten()
            .collect();
        assert!(PatternSet::new(compiled).is_none());
    }
}
