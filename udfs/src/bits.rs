//! A bitmap from a test of each value: the loop behind this crate's per-row numeric tests.

use arrow::array::{Array, BooleanArray};
use arrow::buffer::{BooleanBuffer, Buffer};

/// A bit per value, set where `test` holds: 64 values to a word, over slices rather than indices
/// so that the loop carries no bounds checks. Each whole word is tested into 64 bytes, a loop of
/// fixed trip count that the compiler turns into vector compares, then packed eight bytes at a
/// time by one multiplication; shifting each test's bit into place took most of the time.
/// `test` should be branch-free (`&`, `|`, not `&&`).
pub(crate) fn bits_where<T: Copy>(values: &[T], test: impl Fn(T) -> bool) -> BooleanBuffer {
    let chunks = values.chunks_exact(64);
    let tail = chunks.remainder();
    let mut words: Vec<u64> = Vec::with_capacity(values.len().div_ceil(64));
    words.extend(chunks.map(|chunk: &[T]| {
        let chunk: &[T; 64] = chunk.try_into().unwrap_or_else(|_| unreachable!());
        let mut tested = [0u8; 64];
        for (byte, &value) in tested.iter_mut().zip(chunk) {
            *byte = u8::from(test(value));
        }
        tested
            .chunks_exact(8)
            .enumerate()
            .fold(0u64, |word, (eighth, bytes)| {
                let bytes: [u8; 8] = bytes.try_into().unwrap_or_else(|_| unreachable!());
                word | pack_eight(u64::from_le_bytes(bytes)) << (8 * eighth)
            })
    }));
    if !tail.is_empty() {
        let word = tail.iter().enumerate().fold(0u64, |word, (bit, &value)| {
            word | u64::from(test(value)) << bit
        });
        words.push(word);
    }
    BooleanBuffer::new(Buffer::from_vec(words), 0, values.len())
}

/// The rows where `flags` is TRUE (not NULL, not FALSE).
pub(crate) fn true_rows(flags: &BooleanArray) -> BooleanBuffer {
    match flags.nulls() {
        Some(present) => flags.values() & present.inner(),
        None => flags.values().clone(),
    }
}

/// Eight bytes, each 0 or 1, as the eight low bits of a byte (the first byte the lowest bit).
/// The multiplier's byte `k` is `2^(7 - k)`, so byte `i` of `bytes` lands on bit `56 + i` of the
/// product with `k = 7 - i`, and no two products of a byte and a multiplier byte meet on the
/// same bit (`8i + 7k` differs for every pair), so nothing carries.
#[inline]
fn pack_eight(bytes: u64) -> u64 {
    bytes.wrapping_mul(0x0102_0408_1020_4080) >> 56
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_bytes_pack_into_their_bits_for_every_pattern() {
        for pattern in 0u64..256 {
            let bytes = (0..8).fold(0u64, |bytes, i| bytes | ((pattern >> i) & 1) << (8 * i));
            assert_eq!(pack_eight(bytes), pattern, "{pattern:08b}");
        }
    }

    #[test]
    fn one_bit_per_value_across_word_boundaries() {
        for len in [0, 1, 7, 8, 63, 64, 65, 130, 200] {
            let values: Vec<i32> = (0..len).collect();
            let bits = bits_where(&values, |v| v % 3 == 0);
            assert_eq!(bits.len(), values.len());
            let expected: Vec<bool> = values.iter().map(|v| v % 3 == 0).collect();
            assert_eq!(bits.iter().collect::<Vec<_>>(), expected, "{len} values");
        }
    }
}
