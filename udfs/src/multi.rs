//! Several `LIKE` patterns over one column, answered in a single pass over each string.
//!
//! The bodies of the `%body%` patterns whose characters are single-character classes are laid end
//! to end in one 64-bit word and run as one shift-and (bitap) automaton: per byte of text, one
//! table load, a shift, an OR and an AND, with no branch, so the cost does not depend on how often
//! the patterns' first characters occur. Bit `j` of the state is set when the text read so far
//! ends with the first `j + 1` classes of a body; a body's last bit set means that pattern matched.
//! Patterns of other shapes, bodies that do not fit in the word, and text that is not ASCII fall
//! back to each pattern's own matcher.

use arrow::array::{Array, StringViewArray};
use arrow::buffer::{BooleanBuffer, Buffer};

use crate::pattern::{LikePattern, Shape};
use crate::prefilter::Prefilter;
use crate::strings::StringTest;

/// The most patterns one set answers at once: one bit each in the result.
pub const MAX_PATTERNS: usize = 63;

/// A set of compiled patterns; [`PatternSet::matches`] returns a bit per pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PatternSet {
    patterns: Vec<LikePattern>,
    automaton: ShiftAnd,
    /// `Contains` patterns with an empty body: they match any text.
    always: u64,
    /// Patterns the automaton answers, with `always`.
    automatic: u64,
    /// All patterns.
    all: u64,
    /// When the automaton answers every pattern and none matches everything: a SIMD screen that
    /// rules out most strings before the automaton reads them.
    screen: Option<Prefilter>,
}

/// The shift-and automaton of several `Contains` bodies sharing one state word.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ShiftAnd {
    /// For each ASCII byte, the state bits whose class accepts it.
    accepts: Vec<u64>,
    /// The first bit of every body: a match may start at any byte.
    firsts: u64,
    /// The last bit of every body.
    lasts: u64,
    /// For each body, its last state bit and its pattern's bit in the result.
    ends: Vec<(u64, u64)>,
}

impl ShiftAnd {
    /// Packs `bodies` (pattern bit, classes) until the word is full; returns the automaton and
    /// the pattern bits it took.
    fn pack<'a>(bodies: impl Iterator<Item = (u64, &'a [u128])>) -> (Self, u64) {
        let mut automaton = Self {
            accepts: vec![0; 128],
            firsts: 0,
            lasts: 0,
            ends: Vec::new(),
        };
        let (mut used, mut taken) = (0u32, 0u64);
        for (pattern_bit, body) in bodies {
            let Ok(length) = u32::try_from(body.len()) else {
                continue;
            };
            if used + length > u64::BITS {
                continue;
            }
            for (offset, class) in (used..).zip(body) {
                for (byte, accepts) in automaton.accepts.iter_mut().enumerate() {
                    if class >> byte & 1 == 1 {
                        *accepts |= 1u64 << offset;
                    }
                }
            }
            let last = 1u64 << (used + length - 1);
            automaton.firsts |= 1u64 << used;
            automaton.lasts |= last;
            automaton.ends.push((last, pattern_bit));
            used += length;
            taken |= pattern_bit;
        }
        (automaton, taken)
    }

    /// The pattern bits matched in `text`, or `None` if the text is not ASCII.
    #[inline]
    fn run(&self, text: &[u8]) -> Option<u64> {
        let mut scan = Scan::default();
        for &byte in text {
            self.step(&mut scan, byte);
        }
        self.finish(&scan)
    }

    /// [`Self::run`] over two texts at once: their state chains are independent, so the
    /// processor overlaps them, where one text alone leaves it waiting on each step.
    #[inline]
    fn run_two(&self, first: &[u8], second: &[u8]) -> (Option<u64>, Option<u64>) {
        let (mut a, mut b) = (Scan::default(), Scan::default());
        let shared = first.len().min(second.len());
        for (&x, &y) in first[..shared].iter().zip(&second[..shared]) {
            self.step(&mut a, x);
            self.step(&mut b, y);
        }
        for &x in &first[shared..] {
            self.step(&mut a, x);
        }
        for &y in &second[shared..] {
            self.step(&mut b, y);
        }
        (self.finish(&a), self.finish(&b))
    }

    #[inline(always)]
    fn step(&self, scan: &mut Scan, byte: u8) {
        scan.high |= byte;
        scan.state = ((scan.state << 1) | self.firsts) & self.accepts[usize::from(byte & 0x7f)];
        scan.seen |= scan.state;
    }

    #[inline]
    fn finish(&self, scan: &Scan) -> Option<u64> {
        if scan.high >= 0x80 {
            return None;
        }
        let seen = scan.seen & self.lasts;
        if seen == 0 {
            return Some(0);
        }
        Some(
            self.ends
                .iter()
                .filter(|&&(last, _)| seen & last != 0)
                .fold(0, |found, &(_, pattern)| found | pattern),
        )
    }
}

/// The automaton's progress through one text.
#[derive(Default)]
struct Scan {
    state: u64,
    /// Every state bit set so far.
    seen: u64,
    /// Every byte ORed together: its top bit says the text is not ASCII.
    high: u8,
}

impl PatternSet {
    /// Builds the set; returns `None` when there are more than [`MAX_PATTERNS`] patterns.
    pub fn new(patterns: Vec<LikePattern>) -> Option<Self> {
        if patterns.len() > MAX_PATTERNS {
            return None;
        }
        let contains = || {
            patterns
                .iter()
                .enumerate()
                .filter(|(_, pattern)| *pattern.shape() == Shape::Contains)
                .map(|(index, pattern)| (1u64 << index, pattern.body()))
        };
        let always = contains()
            .filter(|(_, body)| body.is_empty())
            .fold(0, |bits, (bit, _)| bits | bit);
        let (automaton, packed) = ShiftAnd::pack(contains().filter(|(_, body)| !body.is_empty()));
        let all = (1u64 << patterns.len()) - 1;
        let screen = if always == 0 && packed == all {
            let bodies: Vec<(u64, &[u128])> = contains().collect();
            Prefilter::new(&bodies)
        } else {
            None
        };
        Some(Self {
            patterns,
            automaton,
            always,
            automatic: always | packed,
            all,
            screen,
        })
    }

    /// The patterns, in the order their bits are numbered.
    pub fn patterns(&self) -> &[LikePattern] {
        &self.patterns
    }

    /// Bit `i` is set when `text LIKE patterns[i]`.
    #[inline]
    pub fn matches(&self, text: &str) -> u64 {
        if self.screened_out(text) {
            return 0;
        }
        self.matches_unscreened(text)
    }

    /// Does the screen rule out every pattern for `text`?
    #[inline]
    fn screened_out(&self, text: &str) -> bool {
        self.screen
            .as_ref()
            .is_some_and(|screen| !screen.may_match(text.as_bytes()))
    }

    fn matches_unscreened(&self, text: &str) -> u64 {
        let found = match self.automaton.run(text.as_bytes()) {
            Some(found) => found | self.always,
            None => self.matches_one_by_one(text, self.automatic),
        };
        if self.automatic == self.all {
            found
        } else {
            found | self.matches_one_by_one(text, self.all & !self.automatic)
        }
    }

    /// [`Self::matches`] for two texts, scanned side by side.
    #[inline]
    pub fn matches_two(&self, first: &str, second: &str) -> (u64, u64) {
        match (self.screened_out(first), self.screened_out(second)) {
            (true, true) => (0, 0),
            (false, true) => (self.matches_unscreened(first), 0),
            (true, false) => (0, self.matches_unscreened(second)),
            (false, false) => self.matches_two_unscreened(first, second),
        }
    }

    fn matches_two_unscreened(&self, first: &str, second: &str) -> (u64, u64) {
        match self.automaton.run_two(first.as_bytes(), second.as_bytes()) {
            (Some(a), Some(b)) if self.automatic == self.all => (a | self.always, b | self.always),
            _ => (
                self.matches_unscreened(first),
                self.matches_unscreened(second),
            ),
        }
    }

    /// `truth` of each row's pattern bits, for the rows of `rows` of a `Utf8View` column (every
    /// row if `None`; other rows' bits are unspecified), as one bit per row, without working out
    /// each row's bits: the dense SIMD screen answers most rows as it reads them in order, and the
    /// rows it cannot (long strings, non-ASCII text) are screened one by one, and read by the
    /// automaton if need be. `None` when the dense screen is not available for this set.
    pub fn evaluate_views(
        &self,
        strings: &StringViewArray,
        rows: Option<&BooleanBuffer>,
        truth: impl Fn(u64) -> bool,
    ) -> Option<BooleanBuffer> {
        let screen = self.screen.as_ref()?;
        let (mut answers, unanswered) = screen.screen_dense(strings, rows, &truth)?;
        for row in unanswered {
            // The screen left these rows' bits clear.
            if let Some(word) = answers.get_mut(row / 64) {
                *word |=
                    u64::from(truth(self.matches_unscreened(strings.value(row)))) << (row % 64);
            }
        }
        Some(BooleanBuffer::new(
            Buffer::from_vec(answers),
            0,
            strings.len(),
        ))
    }

    fn matches_one_by_one(&self, text: &str, which: u64) -> u64 {
        self.patterns
            .iter()
            .enumerate()
            .filter(|&(index, pattern)| which >> index & 1 == 1 && pattern.matches(text))
            .fold(0, |found, (index, _)| found | 1u64 << index)
    }
}

/// `truth` of a set's match bits for each string, as a [`StringTest`].
pub(crate) struct Tabulated<'a, F> {
    pub(crate) set: &'a PatternSet,
    pub(crate) truth: F,
}

impl<F: Fn(u64) -> bool> StringTest for Tabulated<'_, F> {
    fn one(&mut self, text: &str) -> bool {
        (self.truth)(self.set.matches(text))
    }

    fn two(&mut self, first: &str, second: &str) -> (bool, bool) {
        let (a, b) = self.set.matches_two(first, second);
        ((self.truth)(a), (self.truth)(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(patterns: &[&str]) -> PatternSet {
        let compiled = patterns
            .iter()
            .map(|p| LikePattern::compile(p).expect("a valid pattern"))
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
    fn the_dense_screen_takes_the_rules_procedure_patterns_given_avx2() {
        let set = set(&[
            "%U05[45]%",
            "%U13[2356]%",
            "%U21[1267]%",
            "%Z665%",
            "%O162%",
        ]);
        let texts = [
            "U054",
            "X621,U132,O162",
            "X621,U132,O161,Z664,A001",
            "é,U054",
        ];
        let views = StringViewArray::from_iter_values(texts);
        // The code script's clause: U05[45], or (U13[2356] or U21[1267]) and (Z665 or O162).
        let clause = |mask: u64| mask & 1 != 0 || (mask & 0b110 != 0 && mask & 0b11000 != 0);
        let answers = set.evaluate_views(&views, None, clause);
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            answers.is_some(),
            std::arch::is_x86_feature_detected!("avx2")
        );
        if let Some(answers) = answers {
            let expected: Vec<bool> = texts.iter().map(|t| clause(set.matches(t))).collect();
            assert_eq!(answers.iter().collect::<Vec<_>>(), expected);
            assert_eq!(expected, [true, true, false, true]);
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

#[cfg(test)]
mod properties {
    use arrow::array::BooleanArray;
    use proptest::prelude::*;

    use super::*;
    use crate::strings::test_strings;

    /// Pattern pieces that exercise every shape, classes, case and a multi-byte character.
    fn piece() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "%", "_", "a", "B", "[ab]", "[^a]", "[0-9]", "é", " ", "U05[45]", "Z665",
        ])
    }

    fn text() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec![
                "a", "A", "b", "5", "é", "É", " ", ",", "\0", "U054", "z665",
            ]),
            0..12,
        )
        .prop_map(|parts| parts.concat())
    }

    /// Texts long enough to span several of the screen's 16-byte chunks.
    fn long_text() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec![
                "a", "B", "5", "é", " ", ",", "\0", "U054", "z665", "x",
            ]),
            0..24,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        /// Sets of `%body%` patterns only, the sets the SIMD screen stands in front of, over
        /// columns of short (inline) and long strings.
        #[test]
        fn screened_sets_agree_with_each_pattern(
            bodies in prop::collection::vec(
                prop::collection::vec(
                    prop::sample::select(vec!["_", "a", "B", "[ab]", "[^a]", "[0-9]", " ", "U05[45]", "Z665", "x"]),
                    1..4,
                ),
                1..6,
            ),
            texts in prop::collection::vec(prop_oneof![text(), long_text()], 1..40),
        ) {
            let patterns: Vec<LikePattern> = bodies
                .iter()
                .filter_map(|pieces| LikePattern::compile(&format!("%{}%", pieces.concat())).ok())
                .collect();
            let set = PatternSet::new(patterns).unwrap_or_else(|| panic!("too many patterns"));
            let views = arrow::array::StringViewArray::from_iter_values(&texts);
            for (index, pattern) in set.patterns().iter().enumerate() {
                let bit = |mask: u64| mask >> index & 1 == 1;
                let one_by_one = test_strings(&views, None, Tabulated { set: &set, truth: bit })
                    .expect("the strings are tested");
                let dense = set.evaluate_views(&views, None, bit);
                for (row, text) in texts.iter().enumerate() {
                    let expected = pattern.matches(text);
                    let source = pattern.source();
                    prop_assert_eq!(one_by_one.value(row), expected, "'{}' LIKE '{}'", text, source);
                    if let Some(dense) = &dense {
                        prop_assert_eq!(dense.value(row), expected, "dense: '{}' LIKE '{}'", text, source);
                    }
                }
            }
        }

        #[test]
        fn every_bit_agrees_with_its_pattern(
            sources in prop::collection::vec(
                (any::<bool>(), prop::collection::vec(piece(), 0..6), any::<bool>()),
                1..20,
            ),
            texts in prop::collection::vec(text(), 1..20),
        ) {
            let patterns: Vec<LikePattern> = sources
                .iter()
                .filter_map(|(open, pieces, close)| {
                    let wrap = |yes: &bool| if *yes { "%" } else { "" };
                    LikePattern::compile(&format!("{}{}{}", wrap(open), pieces.concat(), wrap(close))).ok()
                })
                .collect();
            let set = PatternSet::new(patterns).unwrap_or_else(|| panic!("too many patterns"));
            // The column path: screened views, inline and not, with NULLs among them.
            let column: Vec<Option<&str>> = texts
                .iter()
                .enumerate()
                .map(|(row, text)| (row % 3 != 2).then_some(text.as_str()))
                .collect();
            let views = arrow::array::StringViewArray::from(column.clone());
            for index in 0..set.patterns().len() {
                let bit = |mask: u64| mask >> index & 1 == 1;
                let found = test_strings(&views, None, Tabulated { set: &set, truth: bit })
                    .expect("the strings are tested");
                let expected: BooleanArray =
                    column.iter().map(|t| t.map(|t| bit(set.matches(t)))).collect();
                prop_assert_eq!(&found, &expected);
            }
            for pair in texts.windows(2) {
                prop_assert_eq!(
                    set.matches_two(&pair[0], &pair[1]),
                    (set.matches(&pair[0]), set.matches(&pair[1]))
                );
            }
            for text in &texts {
                let found = set.matches(text);
                for (index, pattern) in set.patterns().iter().enumerate() {
                    prop_assert_eq!(
                        found >> index & 1 == 1,
                        pattern.matches(text),
                        "'{}' LIKE '{}'", text, pattern.source()
                    );
                }
            }
        }
    }

    proptest! {
        // Columns of up to 1100 rows: fewer cases.
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The dense screen's answers, for any truth table over the match bits, on a column of
        /// inline, long and non-ASCII strings and NULLs, sliced, and with some rows not asked for.
        #[test]
        fn dense_answers_are_the_truth_of_each_rows_matches(
            // Bodies of at most four classes, each the product of its nibbles: the screen is
            // exact for them, so a processor with AVX2 must take the dense path.
            bodies in prop::collection::vec(
                prop_oneof![
                    prop::collection::vec(
                        prop::sample::select(vec!["a", "B", "[ab]", "[0-9]", " ", "x"]),
                        1..=4,
                    ),
                    prop::sample::select(vec!["U05[45]", "Z665", "O162"]).prop_map(|b| vec![b]),
                ],
                1..=7,
            ),
            texts in prop::collection::vec(
                prop::option::weighted(0.8, prop_oneof![text(), long_text()]),
                // Past one block of 512 rows.
                1..1100,
            ),
            asked in prop::collection::vec(any::<bool>(), 1100),
            table in any::<u64>(),
            skip in 0..3usize,
        ) {
            let patterns: Vec<LikePattern> = bodies
                .iter()
                .filter_map(|pieces| LikePattern::compile(&format!("%{}%", pieces.concat())).ok())
                .collect();
            let set = PatternSet::new(patterns).unwrap_or_else(|| panic!("too many patterns"));
            let truth = |mask: u64| table >> (mask % 64) & 1 == 1;
            let whole = arrow::array::StringViewArray::from(texts.clone());
            let skip = skip.min(texts.len() - 1);
            let views = whole.slice(skip, texts.len() - skip);
            let asked = BooleanBuffer::from(&asked[..views.len()]);
            let rows = views.logical_nulls().map(|nulls| nulls.inner() & &asked);
            let answers = set.evaluate_views(&views, rows.as_ref(), truth);
            #[cfg(target_arch = "x86_64")]
            prop_assert_eq!(answers.is_some(), std::arch::is_x86_feature_detected!("avx2"));
            if let Some(answers) = answers {
                prop_assert_eq!(answers.len(), views.len());
                for (row, text) in texts[skip..].iter().enumerate() {
                    if let (Some(text), true) = (text, asked.value(row)) {
                        prop_assert_eq!(answers.value(row), truth(set.matches(text)), "'{}'", text);
                    }
                }
            }
        }
    }
}
