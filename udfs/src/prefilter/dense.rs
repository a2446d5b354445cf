//! The dense screen: every row of a `Utf8View` column in order, two views per AVX2 instruction,
//! each screened where it lies in the view array, with no branch per row.
//!
//! A view is sixteen bytes: the string's length in the first four, then, for a string of at most
//! twelve bytes, the string itself, zero-padded. Each 128-bit lane of a register holds one view;
//! the length bytes and the bytes past the string are masked to zero, which no class of an exact
//! screen accepts, and the lane is screened as the one-string screen screens a chunk. A row's code
//! is its body bits, with [`DOUBT`] added when the view holds no string (a longer one) or the string
//! has a byte outside ASCII: the caller answers those rows itself.

use std::arch::x86_64::{
    __m256i, _mm_loadu_si128, _mm256_alignr_epi8, _mm256_and_si256, _mm256_broadcastsi128_si256,
    _mm256_cmpeq_epi8, _mm256_cmpgt_epi8, _mm256_cmpgt_epi32, _mm256_extract_epi8,
    _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_or_si256, _mm256_set_epi64x, _mm256_set1_epi8,
    _mm256_set1_epi32, _mm256_setr_epi8, _mm256_setzero_si256, _mm256_shuffle_epi8,
    _mm256_srli_epi16, _mm256_srli_si256,
};

use arrow::array::StringViewArray;

use super::{NOT_ASCII, Prefilter, WINDOW, fold_chunks, inline_text, ssse3};

/// Rows per word of answer bits.
const WORD: usize = 64;

/// The code bit of a row the screen cannot answer.
const DOUBT: i8 = i8::MIN;

/// Rows per block: the dense pass answers a block, then screens the block's doubtful rows one by
/// one while their views are still in the first-level cache.
const BLOCK: usize = 8 * WORD;

/// Sets the answer bit of each selected row (`selected` has a bit per row, every row if `None`)
/// to `truth`'s bit for the row's code (bit `code >> 4` of `truth[code & 15]`); returns the
/// selected rows whose text is not ASCII, which neither screen answers.
#[target_feature(enable = "avx2")]
pub(super) fn screen_dense(
    screen: &Prefilter,
    strings: &StringViewArray,
    selected: Option<&[u64]>,
    truth: &[u8; 16],
    answers: &mut [u64],
) -> Vec<usize> {
    let tables = Tables::new(screen);
    let one_by_one = ssse3::Tables::new(screen);
    let truth_register = _mm256_broadcastsi128_si256(load_128(truth));
    let views: &[u128] = strings.views();
    let mut unanswered = Vec::new();
    let mut doubtful = [0u64; BLOCK / WORD];
    for (block, (views, answers)) in views
        .chunks(BLOCK)
        .zip(answers.chunks_mut(BLOCK / WORD))
        .enumerate()
    {
        for ((chunk, answer), doubt) in views
            .chunks(WORD)
            .zip(answers.iter_mut())
            .zip(&mut doubtful)
        {
            let mut codes = [0u8; WORD];
            let mut pairs = chunk.chunks_exact(2);
            for (slot, pair) in codes.chunks_exact_mut(2).zip(&mut pairs) {
                // SAFETY: `pair` is two views, 32 readable bytes; the load needs no alignment.
                let views = unsafe { _mm256_loadu_si256(pair.as_ptr().cast()) };
                slot.copy_from_slice(&tables.codes(views));
            }
            if let [last] = pairs.remainder() {
                let view = _mm256_set_epi64x(0, 0, (last >> 64) as i64, *last as i64);
                codes[chunk.len() - 1] = tables.codes(view)[0];
            }
            (*answer, *doubt) = lookup(&codes, truth_register);
        }
        let first_word = block * (BLOCK / WORD);
        for (index, (answer, doubt)) in answers.iter_mut().zip(doubtful).enumerate() {
            let word = first_word + index;
            let mut doubt =
                doubt & selected.map_or(u64::MAX, |s| s.get(word).copied().unwrap_or(0));
            while doubt != 0 {
                let bit = doubt.trailing_zeros() as usize;
                doubt &= doubt - 1;
                let row = word * WORD + bit;
                let found = match views.get(row - block * BLOCK).and_then(|&v| inline_text(v)) {
                    Some(text) => one_by_one.screen(text),
                    None => fold_chunks(strings.value(row).as_bytes(), |chunk| {
                        one_by_one.screen(chunk)
                    }),
                };
                if found & NOT_ASCII != 0 {
                    unanswered.push(row);
                } else {
                    let code = found as u8;
                    let yes = truth[usize::from(code & 15)] >> (code >> 4) & 1;
                    // `lookup` left a doubtful row's bit clear.
                    *answer |= u64::from(yes) << bit;
                }
            }
        }
    }
    unanswered
}

/// The answer and doubt bits of 64 codes: `truth` looked up by each code's low nibble gives a
/// byte whose bit `code >> 4` is the answer.
#[target_feature(enable = "avx2")]
fn lookup(codes: &[u8; WORD], truth: __m256i) -> (u64, u64) {
    let nibble = _mm256_set1_epi8(0x0f);
    let powers = _mm256_setr_epi8(
        1, 2, 4, 8, 16, 32, 64, -128, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, -128, 0, 0,
        0, 0, 0, 0, 0, 0,
    );
    let half = |at: usize| {
        // SAFETY: `at` is 0 or 32, so `codes[at..at + 32]` is 32 readable bytes.
        let codes = unsafe { _mm256_loadu_si256(codes.as_ptr().add(at).cast()) };
        let unsure = _mm256_movemask_epi8(codes) as u32;
        let candidates = _mm256_shuffle_epi8(truth, _mm256_and_si256(codes, nibble));
        // `srli` by four leaves bit 7's doubt in bit 3, which picks no power: a doubtful row's
        // answer is 0.
        let which = _mm256_shuffle_epi8(
            powers,
            _mm256_and_si256(_mm256_srli_epi16::<4>(codes), nibble),
        );
        let miss = _mm256_cmpeq_epi8(_mm256_and_si256(candidates, which), _mm256_setzero_si256());
        (!(_mm256_movemask_epi8(miss) as u32), unsure)
    };
    let (low_yes, low_unsure) = half(0);
    let (high_yes, high_unsure) = half(32);
    (
        u64::from(low_yes) | u64::from(high_yes) << 32,
        u64::from(low_unsure) | u64::from(high_unsure) << 32,
    )
}

#[target_feature(enable = "avx2")]
fn load_128(bytes: &[u8; 16]) -> std::arch::x86_64::__m128i {
    // SAFETY: `bytes` is 16 readable bytes; the load needs no alignment.
    unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) }
}

/// The screen's tables in both lanes of a register, loaded once per call.
struct Tables {
    low: [__m256i; WINDOW],
    high: [__m256i; WINDOW],
    beyond: [__m256i; WINDOW],
}

impl Tables {
    #[target_feature(enable = "avx2")]
    fn new(screen: &Prefilter) -> Self {
        let both = |table: &[u8; 16]| _mm256_broadcastsi128_si256(load_128(table));
        Self {
            low: screen.low.each_ref().map(both),
            high: screen.high.each_ref().map(both),
            beyond: screen.beyond.map(|bits| _mm256_set1_epi8(bits as i8)),
        }
    }

    /// The codes of the two views in `views`, one per lane.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn codes(&self, views: __m256i) -> [u8; 2] {
        // Byte `i` of a lane is text when `i - 4` is below the length; the length bytes never
        // are (127 exceeds any inline length), nor is any byte of a longer string's view.
        let positions = _mm256_setr_epi8(
            127, 127, 127, 127, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 127, 127, 127, 127, 0, 1, 2,
            3, 4, 5, 6, 7, 8, 9, 10, 11,
        );
        let length = _mm256_shuffle_epi8(views, _mm256_setzero_si256());
        let text = _mm256_and_si256(views, _mm256_cmpgt_epi8(length, positions));
        let length_word = _mm256_set_epi64x(0, 0xffff_ffff, 0, 0xffff_ffff);
        let long = _mm256_and_si256(
            _mm256_cmpgt_epi32(views, _mm256_set1_epi32(12)),
            length_word,
        );
        let nibble = _mm256_set1_epi8(0x0f);
        let low = _mm256_and_si256(text, nibble);
        let high = _mm256_and_si256(_mm256_srli_epi16::<4>(text), nibble);
        let class = |j: usize| {
            _mm256_and_si256(
                _mm256_shuffle_epi8(self.low[j], low),
                _mm256_shuffle_epi8(self.high[j], high),
            )
        };
        // As in the one-string screen: lane byte `i` keeps the bodies whose window of classes
        // accepts the bytes from `i` on.
        let mut open = class(0);
        open = _mm256_and_si256(open, _mm256_alignr_epi8::<1>(self.beyond[1], class(1)));
        open = _mm256_and_si256(open, _mm256_alignr_epi8::<2>(self.beyond[2], class(2)));
        open = _mm256_and_si256(open, _mm256_alignr_epi8::<3>(self.beyond[3], class(3)));
        let unsure = _mm256_and_si256(_mm256_or_si256(text, long), _mm256_set1_epi8(DOUBT));
        open = _mm256_or_si256(open, unsure);
        open = _mm256_or_si256(open, _mm256_srli_si256::<8>(open));
        open = _mm256_or_si256(open, _mm256_srli_si256::<4>(open));
        open = _mm256_or_si256(open, _mm256_srli_si256::<2>(open));
        open = _mm256_or_si256(open, _mm256_srli_si256::<1>(open));
        [
            _mm256_extract_epi8::<0>(open) as u8,
            _mm256_extract_epi8::<16>(open) as u8,
        ]
    }
}
