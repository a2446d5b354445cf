//! A SIMD screen in front of the shift-and automaton: sixteen bytes of text at a time, it rules
//! out the strings in which no `%body%` pattern can start, so the automaton reads only the rest.
//!
//! The screen looks at each body's first [`WINDOW`] classes. For window offset `j`, two 16-entry
//! tables (one indexed by a byte's low nibble, one by its high nibble) give, per bit, whether some
//! byte with that nibble is in the class of the bodies on that bit; `pshufb` looks all sixteen bytes
//! up at once. A class is thus widened to the product of its nibbles, and bodies share bits when
//! there are more than [`BITS`], so the screen may pass a string no pattern matches (the automaton
//! then says so) but never rejects one a pattern matches. Text with a byte outside ASCII always
//! passes, since `_` or a negated class may match a multi-byte character the tables do not describe.
//!
//! Two forms: one string at a time with SSSE3 ([`Prefilter::may_match`], `ssse3.rs`), and a whole
//! `Utf8View` column at once with AVX2 ([`Prefilter::screen_dense`], `dense.rs`). The features are
//! checked once at run time; without SSSE3 the screen passes everything and the automaton alone
//! answers, and without AVX2 the dense form is not offered.
// The only `unsafe` in the crate: calling the SIMD functions once the processor is known to have
// the feature (a `#[target_feature]` function may only be called where the feature is known), and
// the unaligned loads they make from slices of known length.
#![allow(unsafe_code)]

use arrow::array::{Array, MAX_INLINE_VIEW_LEN, StringViewArray};
use arrow::buffer::BooleanBuffer;

/// How many leading classes of each body the screen tests.
pub const WINDOW: usize = 4;

/// The bits bodies are screened on (body `i` on bit `i % BITS`), leaving the top bit of a byte to
/// the dense screen's doubt.
const BITS: usize = 7;

/// The screen for one set of bodies.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Prefilter {
    /// `low[j][n]`: the bits whose class at offset `j` accepts a byte with low nibble `n`.
    low: [[u8; 16]; WINDOW],
    /// `high[j][n]`: likewise for the high nibble.
    high: [[u8; 16]; WINDOW],
    /// `beyond[j]`: the bits of bodies at most `j` classes long, for which offset `j` is past
    /// their end: accepted whatever is there, in the tables and past the chunk's end.
    beyond: [u8; WINDOW],
    /// For each combination of bits, the patterns whose bodies they stand for.
    patterns: Box<[u64; 256]>,
    /// The screen's bits are the bodies' matches, not just a hint, for ASCII text: at most [`BITS`]
    /// bodies of at most [`WINDOW`] classes, each class the product of its nibbles and none
    /// accepting the zero bytes that pad a chunk.
    exact: bool,
    /// The processor has SSSE3.
    enabled: bool,
    /// The processor has AVX2: [`Self::screen_dense`] can answer a whole column.
    dense: bool,
}

/// What the screen found in a text: bits `0..8` are body bits, [`NOT_ASCII`] says the text holds a
/// byte outside ASCII, so the bits say nothing.
pub type Found = u16;

/// The [`Found`] bit of text with a byte outside ASCII.
pub const NOT_ASCII: Found = 0x100;

/// The bytes whose low nibble is that of a byte in `class` and high nibble that of another.
fn nibble_product(class: u128) -> u128 {
    let bytes = || (0..128u8).filter(move |&byte| class >> byte & 1 == 1);
    let lows: u16 = bytes().fold(0, |set, byte| set | 1 << (byte & 0x0f));
    let highs: u16 = bytes().fold(0, |set, byte| set | 1 << (byte >> 4));
    (0..128u8)
        .filter(|byte| lows >> (byte & 0x0f) & 1 == 1 && highs >> (byte >> 4) & 1 == 1)
        .fold(0, |set, byte| set | 1u128 << byte)
}

impl Prefilter {
    /// The screen for `bodies`, each a list of byte classes over ASCII (one `u128` bit per byte)
    /// with the pattern bits it answers for; `None` if there is nothing to screen or an empty
    /// body, which matches everything.
    pub fn new(bodies: &[(u64, &[u128])]) -> Option<Self> {
        if bodies.is_empty() || bodies.iter().any(|(_, body)| body.is_empty()) {
            return None;
        }
        let mut screen = Self {
            low: [[0; 16]; WINDOW],
            high: [[0; 16]; WINDOW],
            beyond: [0; WINDOW],
            patterns: Box::new([0; 256]),
            exact: bodies.len() <= BITS,
            enabled: ssse3(),
            dense: false,
        };
        for (index, &(patterns, body)) in bodies.iter().enumerate() {
            let bit = 1u8 << (index % BITS);
            for (bits, entry) in screen.patterns.iter_mut().enumerate() {
                if bits & usize::from(bit) != 0 {
                    *entry |= patterns;
                }
            }
            let window = body.len().min(WINDOW);
            screen.exact &= body.len() <= WINDOW;
            for (j, &class) in body.iter().take(window).enumerate() {
                screen.exact &= class & 1 == 0 && nibble_product(class) == class;
                for byte in (0..128u8).filter(|&byte| class >> byte & 1 == 1) {
                    screen.low[j][usize::from(byte & 0x0f)] |= bit;
                    screen.high[j][usize::from(byte >> 4)] |= bit;
                }
            }
            for j in window..WINDOW {
                screen.low[j].iter_mut().for_each(|entry| *entry |= bit);
                screen.high[j].iter_mut().for_each(|entry| *entry |= bit);
                screen.beyond[j] |= bit;
            }
        }
        screen.dense = screen.enabled && avx2();
        Some(screen)
    }

    /// May some body occur in `text`? False only when none can.
    #[inline]
    pub fn may_match(&self, text: &[u8]) -> bool {
        !self.enabled || simd_may_match(self, text)
    }

    /// `truth(patterns)` of each row's pattern bits, for every row of `rows` of a `Utf8View`
    /// column (every row if `None`), as one bit per row in a word per 64 rows; other rows' bits
    /// are unspecified. Also returns the rows whose answer the screen leaves to the automaton
    /// (text not ASCII, or, when the screen is not exact, text it passes); their bits are clear
    /// for the caller to set. `None` when the processor lacks AVX2.
    pub fn screen_dense(
        &self,
        strings: &StringViewArray,
        rows: Option<&BooleanBuffer>,
        truth: impl Fn(u64) -> bool,
    ) -> Option<(Vec<u64>, Vec<usize>)> {
        if !self.dense {
            return None;
        }
        // Bit `code >> 4` of `table[code & 15]`: the answer for a row whose body bits are `code`.
        let mut table = [0u8; 16];
        for code in 0..128u8 {
            if truth(self.patterns_of(Found::from(code))) {
                table[usize::from(code & 15)] |= 1 << (code >> 4);
            }
        }
        let selected: Option<Vec<u64>> = rows.map(|rows| rows.bit_chunks().iter_padded().collect());
        let mut answers = vec![0; strings.len().div_ceil(64)];
        let unanswered =
            simd_screen_dense(self, strings, selected.as_deref(), &table, &mut answers);
        Some((answers, unanswered))
    }

    /// The patterns of the body bits in `found`.
    #[inline(always)]
    fn patterns_of(&self, found: Found) -> u64 {
        self.patterns[usize::from(found as u8)]
    }
}

// The SIMD entry points below may only be called when `enabled` (`dense` for the dense screen)
// is true.

#[cfg(target_arch = "x86_64")]
fn ssse3() -> bool {
    std::arch::is_x86_feature_detected!("ssse3")
}

#[cfg(target_arch = "x86_64")]
fn simd_may_match(screen: &Prefilter, text: &[u8]) -> bool {
    // SAFETY: called only when `screen.enabled`, which is set only if the processor has SSSE3.
    unsafe { ssse3::may_match(screen, text) }
}

#[cfg(target_arch = "x86_64")]
fn avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

#[cfg(target_arch = "x86_64")]
fn simd_screen_dense(
    screen: &Prefilter,
    strings: &StringViewArray,
    selected: Option<&[u64]>,
    truth: &[u8; 16],
    answers: &mut [u64],
) -> Vec<usize> {
    // SAFETY: called only when `screen.dense`, which is set only if the processor has AVX2.
    unsafe { dense::screen_dense(screen, strings, selected, truth, answers) }
}

#[cfg(not(target_arch = "x86_64"))]
fn ssse3() -> bool {
    false
}

#[cfg(not(target_arch = "x86_64"))]
fn avx2() -> bool {
    false
}

#[cfg(not(target_arch = "x86_64"))]
fn simd_screen_dense(
    _: &Prefilter,
    _: &StringViewArray,
    _: Option<&[u64]>,
    _: &[u8; 16],
    _: &mut [u64],
) -> Vec<usize> {
    Vec::new()
}

#[cfg(not(target_arch = "x86_64"))]
fn simd_may_match(_: &Prefilter, _: &[u8]) -> bool {
    true
}

/// The text of a view that holds its string inline (12 bytes or fewer), as the low bytes of a
/// 16-byte chunk with zeros after it; `None` for a longer string.
#[inline(always)]
fn inline_text(view: u128) -> Option<u128> {
    let length = view as u32;
    (length <= MAX_INLINE_VIEW_LEN).then(|| (view >> 32) & ((1u128 << (8 * length)) - 1))
}

/// `f` of each of the 16-byte chunks that together hold every window of [`WINDOW`] bytes of
/// `text`, ORed: for a text up to 16 bytes, one chunk (zero-padded); for a longer one, chunks
/// every 13 bytes and one ending at the last byte.
#[inline(always)]
fn fold_chunks(text: &[u8], mut f: impl FnMut(u128) -> Found) -> Found {
    const STRIDE: usize = 16 - (WINDOW - 1);
    let n = text.len();
    let word = |at: usize| {
        text.get(at..at + 8)
            .and_then(|bytes| bytes.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    };
    let chunk = |at: usize| {
        text.get(at..at + 16)
            .and_then(|bytes| bytes.try_into().ok())
            .map_or(0, u128::from_le_bytes)
    };
    if n < 8 {
        let mut padded = [0u8; 16];
        padded[..n].copy_from_slice(text);
        return f(u128::from_le_bytes(padded));
    }
    if n <= 16 {
        // Two overlapping 8-byte reads: the bytes they share are the same, so OR joins them.
        return f(u128::from(word(0)) | u128::from(word(n - 8)) << (8 * (n - 8)));
    }
    let mut found = 0;
    let mut at = 0;
    while at + 16 < n {
        found |= f(chunk(at));
        at += STRIDE;
    }
    found | f(chunk(n - 16))
}

#[cfg(target_arch = "x86_64")]
mod dense;
#[cfg(target_arch = "x86_64")]
mod ssse3;

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(body: &str) -> Vec<u128> {
        body.bytes()
            .map(|b| 1u128 << b.to_ascii_uppercase() | 1u128 << b.to_ascii_lowercase())
            .collect()
    }

    #[test]
    fn chunks_cover_every_window() {
        for length in 0..60usize {
            let text: Vec<u8> = (0..length).map(|i| b'a' + (i % 26) as u8).collect();
            let mut seen = Vec::new();
            fold_chunks(&text, |chunk| {
                seen.push(chunk.to_le_bytes());
                0
            });
            for start in 0..length {
                let window = &text[start..length.min(start + WINDOW)];
                assert!(
                    seen.iter()
                        .any(|chunk| chunk.windows(window.len()).any(|w| w == window)),
                    "length {length}: window at {start} not in any chunk"
                );
            }
        }
    }

    #[test]
    fn inline_text_is_the_view_text_and_zeros() {
        let view = |text: &[u8]| {
            let mut bytes = [0u8; 16];
            bytes[..4].copy_from_slice(&(text.len() as u32).to_le_bytes());
            bytes[4..4 + text.len().min(12)].copy_from_slice(&text[..text.len().min(12)]);
            u128::from_le_bytes(bytes)
        };
        assert_eq!(inline_text(view(b"")), Some(0));
        assert_eq!(
            inline_text(view(b"U054")),
            Some(u128::from(u32::from_le_bytes(*b"U054")))
        );
        assert_eq!(
            inline_text(view(b"U054,Z665,O1")).map(|t| t >> 88),
            Some(u128::from(b'1'))
        );
        assert_eq!(inline_text(view(b"U054,Z665,O162")), None);
    }

    #[test]
    fn the_rules_bodies_screen_exactly_on_ascii() {
        let bodies = ["U054", "Z665", "O162"].map(classes);
        let refs: Vec<(u64, &[u128])> = (0..)
            .zip(&bodies)
            .map(|(i, b)| (1 << i, b.as_slice()))
            .collect();
        let Some(screen) = Prefilter::new(&refs) else {
            panic!("no screen");
        };
        assert!(screen.exact);
        if !screen.enabled {
            return;
        }
        for (text, expected) in [
            ("", false),
            ("u054", true),
            ("X621,U055", false),
            ("X621,U132,O162", true),
            ("X621,U132,O161,Z664,A001", false),
            ("X621,U132,O161,Z664,A001,z665", true),
            ("É", true),
        ] {
            assert_eq!(screen.may_match(text.as_bytes()), expected, "{text}");
        }
    }
}
