//! The screen one string at a time, sixteen bytes per SSSE3 instruction.

use std::arch::x86_64::{
    __m128i, _mm_alignr_epi8, _mm_and_si128, _mm_cvtsi128_si32, _mm_loadu_si128, _mm_movemask_epi8,
    _mm_or_si128, _mm_set_epi64x, _mm_set1_epi8, _mm_shuffle_epi8, _mm_srli_epi16, _mm_srli_si128,
};

use super::{Found, Prefilter, WINDOW, fold_chunks};

#[target_feature(enable = "ssse3")]
pub(super) fn may_match(screen: &Prefilter, text: &[u8]) -> bool {
    let tables = Tables::new(screen);
    fold_chunks(text, |chunk| tables.screen(chunk)) != 0
}

/// The screen's tables loaded into registers once per call.
pub(super) struct Tables {
    low: [__m128i; WINDOW],
    high: [__m128i; WINDOW],
    beyond: [__m128i; WINDOW],
}

impl Tables {
    #[target_feature(enable = "ssse3")]
    pub(super) fn new(screen: &Prefilter) -> Self {
        let load = |table: &[u8; 16]| {
            // SAFETY: `table` is 16 readable bytes; the load has no alignment requirement.
            unsafe { _mm_loadu_si128(table.as_ptr().cast()) }
        };
        Self {
            low: screen.low.each_ref().map(load),
            high: screen.high.each_ref().map(load),
            beyond: screen.beyond.map(|bits| _mm_set1_epi8(bits as i8)),
        }
    }

    /// The body bits of the windows that pass in `chunk`, and [`super::NOT_ASCII`] if it holds a
    /// byte outside ASCII.
    #[inline]
    #[target_feature(enable = "ssse3")]
    pub(super) fn screen(&self, chunk: u128) -> Found {
        let bytes = _mm_set_epi64x((chunk >> 64) as i64, chunk as i64);
        let nibble = _mm_set1_epi8(0x0f);
        let low = _mm_and_si128(bytes, nibble);
        let high = _mm_and_si128(_mm_srli_epi16::<4>(bytes), nibble);
        let class = |j: usize| {
            _mm_and_si128(
                _mm_shuffle_epi8(self.low[j], low),
                _mm_shuffle_epi8(self.high[j], high),
            )
        };
        // Lane i of `open` holds the bits of bodies whose window's classes accept the bytes
        // from i on: class j's lanes move down j places, with `beyond[j]` coming in at the top.
        let mut open = class(0);
        open = _mm_and_si128(open, _mm_alignr_epi8::<1>(self.beyond[1], class(1)));
        open = _mm_and_si128(open, _mm_alignr_epi8::<2>(self.beyond[2], class(2)));
        open = _mm_and_si128(open, _mm_alignr_epi8::<3>(self.beyond[3], class(3)));
        let not_ascii = Found::from(_mm_movemask_epi8(bytes) != 0) << 8;
        // OR the lanes together, whether or not any is set: cheaper than a guessed branch.
        open = _mm_or_si128(open, _mm_srli_si128::<8>(open));
        open = _mm_or_si128(open, _mm_srli_si128::<4>(open));
        open = _mm_or_si128(open, _mm_srli_si128::<2>(open));
        open = _mm_or_si128(open, _mm_srli_si128::<1>(open));
        (_mm_cvtsi128_si32(open) & 0xff) as Found | not_ascii
    }
}
