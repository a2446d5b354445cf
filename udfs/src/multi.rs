//! Several `LIKE` patterns over one column, answered in a single pass over each string.
//!
//! Every `%body%` pattern whose body is single-character classes joins one scan: a 256-entry table
//! says which patterns can start at each byte, so the scan looks up one table entry per byte and
//! checks a pattern's remaining classes only where it can start. Patterns of other shapes, and
//! text that is not ASCII, fall back to each pattern's own matcher.

use crate::pattern::{LikePattern, Shape, body_matches_at};

/// The most patterns one set answers at once: one bit each in the result.
pub const MAX_PATTERNS: usize = 63;

/// In [`PatternSet::starts`], marks bytes that only occur in non-ASCII text.
const NON_ASCII: u64 = 1 << 63;

/// A set of compiled patterns; [`PatternSet::matches`] returns a bit per pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PatternSet {
    patterns: Vec<LikePattern>,
    /// For each byte, the `Contains` patterns whose first class accepts it; [`NON_ASCII`] for
    /// bytes of multi-byte characters, so the scan needs no separate ASCII check.
    starts: Vec<u64>,
    /// `Contains` patterns with an empty body: they match any text.
    always: u64,
    /// All `Contains` patterns.
    scanned: u64,
    /// All patterns.
    all: u64,
}

impl PatternSet {
    /// Builds the set; returns `None` when there are more than [`MAX_PATTERNS`] patterns.
    pub fn new(patterns: Vec<LikePattern>) -> Option<Self> {
        if patterns.len() > MAX_PATTERNS {
            return None;
        }
        let mut starts = vec![0u64; 256];
        starts[128..].fill(NON_ASCII);
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
        let all = (1u64 << patterns.len()) - 1;
        Some(Self {
            patterns,
            starts,
            always,
            scanned,
            all,
        })
    }

    pub fn patterns(&self) -> &[LikePattern] {
        &self.patterns
    }

    /// Bit `i` is set when `text LIKE patterns[i]`.
    pub fn matches(&self, text: &str) -> u64 {
        let found = match self.scan(text.as_bytes()) {
            Scan::Complete(found) => found,
            // Byte-wise matches found before the first multi-byte character are real matches;
            // the rest need the character-wise matcher.
            Scan::NotAscii(found) => found | self.matches_one_by_one(text, self.scanned & !found),
        };
        if self.scanned == self.all {
            found
        } else {
            found | self.matches_one_by_one(text, self.all & !self.scanned)
        }
    }

    fn matches_one_by_one(&self, text: &str, which: u64) -> u64 {
        self.patterns
            .iter()
            .enumerate()
            .filter(|&(index, pattern)| which >> index & 1 == 1 && pattern.matches(text))
            .fold(0, |found, (index, _)| found | 1u64 << index)
    }

    fn scan(&self, text: &[u8]) -> Scan {
        let mut found = self.always;
        if found == self.scanned {
            return Scan::Complete(found);
        }
        for (at, &byte) in text.iter().enumerate() {
            let entry = self.starts[usize::from(byte)];
            if entry == 0 {
                continue;
            }
            if entry & NON_ASCII != 0 {
                return Scan::NotAscii(found);
            }
            let mut candidates = entry & !found;
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
        Scan::Complete(found)
    }
}

enum Scan {
    Complete(u64),
    /// The text has a multi-byte character; the bits are what was found before it.
    NotAscii(u64),
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
