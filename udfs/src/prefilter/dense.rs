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
    __m256i, _mm_loadu_si128, _mm256_alignr_epi8, _mm256_and_si256, _mm256_blend_epi32,
    _mm256_broadcastsi128_si256, _mm256_cmpeq_epi8, _mm256_cmpgt_epi8, _mm256_cmpgt_epi32,
    _mm256_extract_epi32, _mm256_loadu_si256, _mm256_loadu2_m128i, _mm256_movemask_epi8,
    _mm256_or_si256, _mm256_set_epi64x, _mm256_set1_epi8, _mm256_set1_epi32, _mm256_setr_epi8,
    _mm256_setzero_si256, _mm256_shuffle_epi8, _mm256_slli_epi64, _mm256_srli_epi16,
    _mm256_srli_epi32, _mm256_srli_epi64, _mm256_unpackhi_epi64, _mm256_unpacklo_epi64,
};
use std::ptr;

use arrow::array::StringViewArray;

use super::{NOT_ASCII, Prefilter, WINDOW, fold_chunks, inline_text, ssse3};

/// Rows per word of answer bits.
const WORD: usize = 64;

/// Rows screened together: four registers of two views, whose codes are gathered at once.
const GROUP: usize = 8;

/// The code bit of a row the screen cannot answer.
const DOUBT: i8 = i8::MIN;

/// Rows per block: the dense pass answers a block, then screens the block's doubtful rows one by
/// one while their views are still in the first-level cache.
const BLOCK: usize = 8 * WORD;

/// Sets the answer bit of each selected row (`selected` has a bit per row, every row if `None`)
/// to `truth`'s bit for the row's code (bit `code >> 4` of `truth[code & 15]`); returns the
/// selected rows the screen cannot answer, their bits clear: text not ASCII, and, when the screen
/// is not exact, text in which it finds a body.
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
            let mut groups = chunk.chunks_exact(GROUP);
            for (slot, group) in codes.chunks_exact_mut(GROUP).zip(&mut groups) {
                slot.copy_from_slice(&tables.codes(group).to_le_bytes());
            }
            let rest = groups.remainder();
            if !rest.is_empty() {
                // Empty views after the last row: length 0, code 0, and masked off below.
                let mut padded = [0u128; GROUP];
                padded[..rest.len()].copy_from_slice(rest);
                let at = chunk.len() - rest.len();
                codes[at..at + GROUP].copy_from_slice(&tables.codes(&padded).to_le_bytes());
            }
            let (yes, unsure) = lookup(&codes, truth_register, screen.exact);
            let rows = u64::MAX >> (WORD - chunk.len());
            (*answer, *doubt) = (yes & rows, unsure & rows);
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
                if found & NOT_ASCII != 0 || !screen.exact && found != 0 {
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
/// byte whose bit `code >> 4` is the answer. A doubtful row's answer is 0; where the screen is not
/// `exact`, a code with any body bit is doubtful.
#[target_feature(enable = "avx2")]
fn lookup(codes: &[u8; WORD], truth: __m256i, exact: bool) -> (u64, u64) {
    let nibble = _mm256_set1_epi8(0x0f);
    let powers = _mm256_setr_epi8(
        1, 2, 4, 8, 16, 32, 64, -128, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, -128, 0, 0,
        0, 0, 0, 0, 0, 0,
    );
    let half = |at: usize| {
        // SAFETY: `at` is 0 or 32, so `codes[at..at + 32]` is 32 readable bytes.
        let codes = unsafe { _mm256_loadu_si256(codes.as_ptr().add(at).cast()) };
        let zero = _mm256_movemask_epi8(_mm256_cmpeq_epi8(codes, _mm256_setzero_si256())) as u32;
        let unsure = _mm256_movemask_epi8(codes) as u32 | if exact { 0 } else { !zero };
        let candidates = _mm256_shuffle_epi8(truth, _mm256_and_si256(codes, nibble));
        let which = _mm256_shuffle_epi8(
            powers,
            _mm256_and_si256(_mm256_srli_epi16::<4>(codes), nibble),
        );
        let miss = _mm256_cmpeq_epi8(_mm256_and_si256(candidates, which), _mm256_setzero_si256());
        (!(_mm256_movemask_epi8(miss) as u32) & !unsure, unsure)
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

    /// The codes of the eight rows of `views`, as the bytes of a word in row order.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn codes(&self, views: &[u128]) -> u64 {
        let Some(views) = views.get(..GROUP) else {
            return 0;
        };
        // Register `k` holds row `k` in its low lane and row `k + 4` in its high lane, so that
        // the reduction below leaves the rows in order.
        let open = |k: usize| {
            let (low, high) = (&views[k], &views[k + 4]);
            // SAFETY: `low` and `high` are 16 readable bytes each; the loads need no alignment.
            self.open(unsafe {
                _mm256_loadu2_m128i(ptr::from_ref(high).cast(), ptr::from_ref(low).cast())
            })
        };
        let (r0, r1, r2, r3) = (open(0), open(1), open(2), open(3));
        // OR each lane's sixteen bytes down to one: sixteen to eight, pairing rows 0 and 2 (1 and
        // 3) in one register's quadwords; eight to four, into the dwords of one register in row
        // order; four to one, byte 0 of each dword.
        let r02 = _mm256_or_si256(_mm256_unpacklo_epi64(r0, r2), _mm256_unpackhi_epi64(r0, r2));
        let r13 = _mm256_or_si256(_mm256_unpacklo_epi64(r1, r3), _mm256_unpackhi_epi64(r1, r3));
        let r02 = _mm256_or_si256(r02, _mm256_srli_epi64::<32>(r02));
        let r13 = _mm256_or_si256(r13, _mm256_slli_epi64::<32>(r13));
        let rows = _mm256_blend_epi32::<0b1010_1010>(r02, r13);
        let rows = _mm256_or_si256(rows, _mm256_srli_epi32::<16>(rows));
        let rows = _mm256_or_si256(rows, _mm256_srli_epi32::<8>(rows));
        let gather = _mm256_setr_epi8(
            0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1, -1, -1,
            -1, -1, -1, -1, -1, -1, -1, -1, -1,
        );
        let codes = _mm256_shuffle_epi8(rows, gather);
        let low = _mm256_extract_epi32::<0>(codes) as u32;
        let high = _mm256_extract_epi32::<4>(codes) as u32;
        u64::from(low) | u64::from(high) << 32
    }

    /// For each byte of each lane's view, the bodies whose window starts there, with [`DOUBT`]
    /// where the view holds no string or a byte is outside ASCII.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn open(&self, views: __m256i) -> __m256i {
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
        _mm256_or_si256(open, unsure)
    }
}
