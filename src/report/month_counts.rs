//! The summary's tallies of one batch by raw month value, whatever the rows' order: extracts
//! ordered by provider, by patient or by load time mix every month in every batch.

use std::collections::HashMap;

use datafusion::arrow::array::builder::make_view;
use datafusion::arrow::array::{
    Array, AsArray, BooleanArray, GenericStringArray, MAX_INLINE_VIEW_LEN, OffsetSizeTrait,
    StringViewArray,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::exec_err;
use datafusion::error::Result;

use super::tap::{Tallies, Tally};
use crate::plan::count_groups::{Recent, true_rows};

/// Adds the rows of one batch to `into`.
pub(super) fn tally_batch(
    month: &dyn Array,
    flags: [&BooleanArray; 2],
    into: &mut Tallies,
) -> Result<()> {
    if flags.iter().any(|flags| flags.len() != month.len()) {
        return exec_err!("an age check gave a flag per row of another length than the batch's");
    }
    let mut counts = MonthCounts::default();
    match month.data_type() {
        DataType::Utf8 => counts.count_text(month.as_string::<i32>(), flags),
        DataType::LargeUtf8 => counts.count_text(month.as_string::<i64>(), flags),
        DataType::Utf8View => counts.count_views(month.as_string_view(), flags),
        other => return exec_err!("the activity month became {other} during the scan"),
    }
    counts.add_to(into);
    Ok(())
}

/// A row's month, as the key it is counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum MonthKey<'a> {
    /// A month of at most 12 bytes (every `YYYYMM`) by its Arrow string view, which holds its
    /// length and all its bytes: equal keys are equal months, compared as one 16-byte integer.
    Short(u128),
    Long(&'a str),
    Null,
}

/// A row whose month is not six ASCII digits (or is NULL): its month is found by `index_of`.
const NOT_SIX_DIGITS: u32 = u32::MAX;

/// The widest range of six-digit months one batch counts by their numbers: 20 years of `YYYYMM`,
/// a table of 48 KiB. A batch whose months spread wider is counted by `index_of` alone.
const DENSE_SPAN: u32 = 2048;

/// One batch's tallies by month, found for each row without allocating or hashing its text.
#[derive(Debug, Default)]
struct MonthCounts<'a> {
    /// Open addressing over `months` by the short key's bits; `EMPTY` where no month is.
    slots: Vec<u32>,
    months: Vec<(MonthKey<'a>, Tally)>,
    /// The tally of each long month and of NULL, found by a map (rare: real months are short).
    others: HashMap<MonthKey<'a>, usize>,
}

const EMPTY: u32 = u32::MAX;

impl<'a> MonthCounts<'a> {
    /// Counts each row under its month: a month of up to 12 bytes (every `YYYYMM`) by its view,
    /// through a cache of the views met in the batch (`Recent`), so that most rows cost a
    /// multiplication and a comparison; longer months and NULL by `index_of`.
    fn count_views(&mut self, months: &'a StringViewArray, flags: [&BooleanArray; 2]) {
        if self.count_one_month(months, flags) {
            return;
        }
        let mut recent = Recent::default();
        for row in 0..months.len() {
            let index = self.month_of_row(months, row, &mut recent);
            self.months[index].1.records += 1;
        }
        let [unknown, impossible] = flags;
        for row in true_rows(unknown).set_indices() {
            let index = self.month_of_row(months, row, &mut recent);
            self.months[index].1.unknown_age += 1;
        }
        for row in true_rows(impossible).set_indices() {
            let index = self.month_of_row(months, row, &mut recent);
            self.months[index].1.impossible_age += 1;
        }
    }

    /// The index in `months` of the month of `row`, a row of `months`.
    // Always inlined: as a call (a closure, at first) it doubled the tally's instructions.
    #[inline(always)]
    fn month_of_row(
        &mut self,
        months: &'a StringViewArray,
        row: usize,
        recent: &mut Recent,
    ) -> usize {
        let view = months.views()[row];
        if months.is_valid(row)
            && let Some(index) = recent.get(view)
        {
            return index as usize;
        }
        let key = if months.is_null(row) {
            MonthKey::Null
        } else if (view as u32) > MAX_INLINE_VIEW_LEN {
            MonthKey::Long(months.value(row))
        } else {
            MonthKey::Short(view)
        };
        let index = self.index_of(key);
        if matches!(key, MonthKey::Short(_)) {
            recent.put(view, index as u32);
        }
        index
    }

    /// Counts a batch whose rows all hold the same short month (every batch of a file cut by
    /// month) at once, and says whether it did: comparing each view with the first costs a
    /// fraction of finding each row's month, and on files that mix months the comparison stops
    /// at the second row.
    fn count_one_month(
        &mut self,
        months: &'a StringViewArray,
        [unknown, impossible]: [&BooleanArray; 2],
    ) -> bool {
        let views = months.views();
        let Some(&first) = views.first() else {
            return false;
        };
        let one_month = months.null_count() == 0
            && (first as u32) <= MAX_INLINE_VIEW_LEN
            && views.iter().all(|&view| view == first);
        if one_month {
            let index = self.index_of(MonthKey::Short(first));
            let tally = &mut self.months[index].1;
            tally.records += views.len() as u64;
            tally.unknown_age += true_rows(unknown).count_set_bits() as u64;
            tally.impossible_age += true_rows(impossible).count_set_bits() as u64;
        }
        one_month
    }

    fn count_text<O: OffsetSizeTrait>(
        &mut self,
        months: &'a GenericStringArray<O>,
        flags: [&BooleanArray; 2],
    ) {
        let mut numbers: Vec<u32> = months
            .iter()
            .map(|month| match month {
                Some(month) if month.len() == 6 => {
                    six_digit_number(make_view(month.as_bytes(), 0, 0))
                }
                _ => NOT_SIX_DIGITS,
            })
            .collect();
        not_where_null(&mut numbers, months.nulls());
        self.count(&numbers, flags, |row| {
            if months.is_null(row) {
                return MonthKey::Null;
            }
            let month = months.value(row);
            if month.len() <= MAX_INLINE_VIEW_LEN as usize {
                MonthKey::Short(make_view(month.as_bytes(), 0, 0))
            } else {
                MonthKey::Long(month)
            }
        });
    }

    /// Counts each row of a text column under its month: a six-digit month (every `YYYYMM`, valid
    /// or not) by its number, in a table from the batch's least, with no probe; on files that mix
    /// months, probing for every row's month was most of the summary's cost. Other months and
    /// NULL (and every row of a batch whose months spread wider than `DENSE_SPAN`) by `index_of`.
    fn count(
        &mut self,
        numbers: &[u32],
        [unknown, impossible]: [&BooleanArray; 2],
        key_of: impl Fn(usize) -> MonthKey<'a>,
    ) {
        // Branch-free, so that it vectorises: NOT_SIX_DIGITS is no lower bound, and counts as 0
        // for the upper one.
        let (least, most) = numbers
            .iter()
            .fold((u32::MAX, 0), |(least, most), &number| {
                let upper = if number == NOT_SIX_DIGITS { 0 } else { number };
                (least.min(number), most.max(upper))
            });
        let dense_span = if least <= most && most - least < DENSE_SPAN {
            (most - least + 1) as usize
        } else {
            0
        };
        let dense_index = |number: u32| {
            (number != NOT_SIX_DIGITS && dense_span > 0).then(|| (number - least) as usize)
        };
        let mut dense = vec![Tally::default(); dense_span];
        // Rows found by probe: the same month as the row before's needs no probe (files cut by
        // month hold long runs of one).
        let mut last: Option<(MonthKey<'a>, usize)> = None;
        let mut probe = |counts: &mut Self, row: usize| {
            let key = key_of(row);
            match last {
                Some((seen, index)) if seen == key => index,
                _ => {
                    let index = counts.index_of(key);
                    last = Some((key, index));
                    index
                }
            }
        };
        for (row, &number) in numbers.iter().enumerate() {
            match dense_index(number) {
                Some(index) => dense[index].records += 1,
                None => {
                    let index = probe(self, row);
                    self.months[index].1.records += 1;
                }
            }
        }
        // The ages the checks flag are few: they are added afterwards, by their rows' months, so
        // the loop over every row tests no flag.
        let mut count_flagged =
            |counts: &mut Self,
             dense: &mut [Tally],
             flags: &BooleanArray,
             count: fn(&mut Tally) -> &mut u64| {
                for row in true_rows(flags).set_indices() {
                    let tally = match dense_index(numbers[row]) {
                        Some(index) => &mut dense[index],
                        None => {
                            let index = probe(counts, row);
                            &mut counts.months[index].1
                        }
                    };
                    *count(tally) += 1;
                }
            };
        count_flagged(self, &mut dense, unknown, |tally| &mut tally.unknown_age);
        count_flagged(self, &mut dense, impossible, |tally| {
            &mut tally.impossible_age
        });
        // A probed key is never six digits, so no month is in both.
        for (offset, tally) in dense.into_iter().enumerate() {
            if tally.records > 0 {
                let month = format!("{:06}", least as usize + offset);
                self.months
                    .push((MonthKey::Short(make_view(month.as_bytes(), 0, 0)), tally));
            }
        }
    }

    fn index_of(&mut self, key: MonthKey<'a>) -> usize {
        let MonthKey::Short(view) = key else {
            let next = self.months.len();
            let index = *self.others.entry(key).or_insert(next);
            if index == next {
                self.months.push((key, Tally::default()));
            }
            return index;
        };
        // A sparse table: a row's month is then in its first slot, and on files that mix months
        // the probe's branch does not depend on the month.
        if self.months.len() * 8 >= self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut slot = spread(view, self.slots.len());
        loop {
            match self.slots[slot] {
                EMPTY => {
                    let index = self.months.len();
                    self.slots[slot] = index as u32;
                    self.months.push((key, Tally::default()));
                    return index;
                }
                index if self.months[index as usize].0 == key => return index as usize,
                _ => slot = (slot + 1) & mask,
            }
        }
    }

    /// Doubles the table (at least 512 slots, 2 KiB), placing the short months again.
    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(512);
        self.slots = vec![EMPTY; size];
        let mask = size - 1;
        for (index, (key, _)) in self.months.iter().enumerate() {
            if let MonthKey::Short(view) = key {
                let mut slot = spread(*view, size);
                while self.slots[slot] != EMPTY {
                    slot = (slot + 1) & mask;
                }
                self.slots[slot] = index as u32;
            }
        }
    }

    fn add_to(self, into: &mut Tallies) {
        for (key, tally) in self.months {
            let month = match key {
                MonthKey::Short(view) => {
                    let length = view as u32 as usize;
                    let bytes = (view >> 32).to_le_bytes();
                    Some(String::from_utf8_lossy(&bytes[..length]).into_owned())
                }
                MonthKey::Long(text) => Some(text.to_owned()),
                MonthKey::Null => None,
            };
            into.entry(month).or_default().add(tally);
        }
    }
}

/// The number six ASCII digits spell, from the Arrow view of a string ("202404" is 202404), or
/// `NOT_SIX_DIGITS` for any other string. Eight lanes of a word at a time and with no branch, as
/// the view holds a six-byte string's length and bytes.
fn six_digit_number(view: u128) -> u32 {
    const HIGH: u64 = 0x8080_8080_8080;
    let length = view as u32;
    let bytes = (view >> 32) as u64 & 0xFFFF_FFFF_FFFF;
    // A lane below 0x80 is a digit if adding 0x46 leaves its top bit clear (it is at most '9')
    // and adding 0x50 sets it (it is at least '0'); neither sum carries into the next lane.
    let ascii = bytes & HIGH == 0;
    let at_most_nine = (bytes + 0x4646_4646_4646) & HIGH == 0;
    let at_least_zero = (bytes + 0x5050_5050_5050) & HIGH == HIGH;
    // The first character is the lowest lane: "00" and the six digits, then pairs, fours, eights.
    let mut number = (bytes.wrapping_sub(0x3030_3030_3030)) << 16;
    number = (number.wrapping_mul(10) + (number >> 8)) & 0x00FF_00FF_00FF_00FF;
    number = (number.wrapping_mul(100) + (number >> 16)) & 0x0000_FFFF_0000_FFFF;
    number = (number.wrapping_mul(10_000) + (number >> 32)) & 0xFFFF_FFFF;
    if length == 6 && ascii && at_most_nine && at_least_zero {
        number as u32
    } else {
        NOT_SIX_DIGITS
    }
}

/// A NULL slot's bytes may spell a month: it is counted as NULL.
fn not_where_null(numbers: &mut [u32], nulls: Option<&NullBuffer>) {
    if let Some(nulls) = nulls.filter(|nulls| nulls.null_count() > 0) {
        for row in (!nulls.inner()).set_indices() {
            numbers[row] = NOT_SIX_DIGITS;
        }
    }
}

/// A position in a table of `size` slots (a power of two) from a short month's view: its bits
/// folded and mixed by MurmurHash3's finaliser, so that months land as if at random. (One
/// multiplication and the product's middle bits put 96 months in 12 slots: the year's last digits
/// never reached them.)
fn spread(view: u128, size: usize) -> usize {
    let mut mixed = (view as u64) ^ ((view >> 64) as u64).rotate_left(32);
    mixed ^= mixed >> 33;
    mixed = mixed.wrapping_mul(0xff51_afd7_ed55_8ccd);
    mixed ^= mixed >> 33;
    mixed = mixed.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    mixed ^= mixed >> 33;
    (mixed >> (64 - size.trailing_zeros())) as usize
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{LargeStringArray, StringArray};

    use super::*;

    #[test]
    fn months_are_tallied_for_every_string_type() {
        let months = [
            Some("202404"),
            Some("202404"),
            None,
            None,
            Some("202404"),
            Some("202413"),
            Some("2024-04 (a month in words)"),
            Some("2024-04 (a month in words)"),
            // Its view is all zeros, as a NULL's is.
            Some(""),
            None,
        ];
        let unknown = BooleanArray::from(vec![
            true, false, true, true, false, false, true, true, false, false,
        ]);
        let impossible = BooleanArray::from(vec![
            false, true, false, true, true, true, false, true, true, false,
        ]);
        let arrays: [Arc<dyn Array>; 3] = [
            Arc::new(StringArray::from(months.to_vec())),
            Arc::new(LargeStringArray::from(months.to_vec())),
            Arc::new(StringViewArray::from(months.to_vec())),
        ];
        for array in arrays {
            let mut tallies = Tallies::new();
            tally_batch(array.as_ref(), [&unknown, &impossible], &mut tallies).expect("tallied");
            let tally = |month: Option<&str>| tallies[&month.map(str::to_owned)];
            let expected = |records, unknown_age, impossible_age| Tally {
                records,
                unknown_age,
                impossible_age,
            };
            assert_eq!(tallies.len(), 5, "{}", array.data_type());
            assert_eq!(tally(Some("202404")), expected(3, 1, 2));
            assert_eq!(tally(None), expected(3, 2, 1));
            assert_eq!(tally(Some("202413")), expected(1, 0, 1));
            assert_eq!(tally(Some("2024-04 (a month in words)")), expected(2, 2, 1));
            assert_eq!(tally(Some("")), expected(1, 0, 1));
        }
    }

    /// Rows in any order, months short and long, NULL months and flags: the tallies equal a
    /// plain count of each month's rows.
    #[test]
    fn tallies_equal_a_plain_count_whatever_the_row_order() {
        use rand::{Rng, SeedableRng};
        let choices = [
            Some("202404"),
            Some("202405"),
            Some("202304"),
            Some(""),
            Some("2024-04 (a month in words)"),
            Some("2024-05 (a month in words)"),
            Some("123456789012"),
            Some("1234567890123"),
            None,
        ];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(28);
        // A wide batch holds months too far apart to count by number: every row is probed.
        // A batch of one month is counted at once: one of each kind of month, and one month but
        // for the last row.
        let one_month = [
            (None, None),
            (Some("202404"), None),
            (Some(""), None),
            (Some("123456789012"), None),
            (Some("1234567890123"), None),
            (Some("202404"), Some("202405")),
        ];
        let cases = [
            (1, false, None),
            (7, false, None),
            (100, false, None),
            (5000, false, None),
            (5000, true, None),
        ]
        .into_iter()
        .chain(one_month.map(|months| (300, false, Some(months))));
        for (rows, wide, only) in cases {
            // Up to 300 distinct months, so the table grows more than once, and runs of one
            // month (a NULL run and an empty-text run among them), as files cut by month hold.
            let mut generated: Vec<Option<String>> = Vec::with_capacity(rows);
            if let Some((month, last)) = only {
                generated.resize(rows, month.map(str::to_owned));
                if let Some(last) = last {
                    generated[rows - 1] = Some(last.to_owned());
                }
            }
            while generated.len() < rows {
                let month = match (rng.random_range(0..6), generated.last()) {
                    (4, Some(previous)) => previous.clone(),
                    (0, _) => Some(format!("{}", rng.random_range(202_000..202_300))),
                    (5, _) if wide => Some(["000001", "999999"][rng.random_range(0..2)].into()),
                    _ => choices[rng.random_range(0..choices.len())].map(str::to_owned),
                };
                generated.push(month);
            }
            let flag = |rng: &mut rand_chacha::ChaCha8Rng| match rng.random_range(0..3) {
                0 => None,
                1 => Some(false),
                _ => Some(true),
            };
            let unknown: BooleanArray = (0..rows).map(|_| flag(&mut rng)).collect();
            let impossible: BooleanArray = (0..rows).map(|_| flag(&mut rng)).collect();
            let mut expected = Tallies::new();
            for (row, month) in generated.iter().enumerate() {
                let tally = expected.entry(month.clone()).or_default();
                tally.records += 1;
                tally.unknown_age += u64::from(unknown.is_valid(row) && unknown.value(row));
                tally.impossible_age +=
                    u64::from(impossible.is_valid(row) && impossible.value(row));
            }
            let months: Vec<Option<&str>> = generated.iter().map(Option::as_deref).collect();
            let arrays: [Arc<dyn Array>; 3] = [
                Arc::new(StringArray::from(months.clone())),
                Arc::new(LargeStringArray::from(months.clone())),
                Arc::new(StringViewArray::from(months)),
            ];
            for array in arrays {
                let mut tallies = Tallies::new();
                tally_batch(array.as_ref(), [&unknown, &impossible], &mut tallies)
                    .expect("tallied");
                assert_eq!(tallies, expected, "{rows} rows of {}", array.data_type());
            }
        }
    }

    #[test]
    fn six_digits_and_nothing_else_are_read_as_a_number() {
        let number = |text: &str| six_digit_number(make_view(text.as_bytes(), 0, 0));
        for (text, expected) in [
            ("202404", 202_404),
            ("000000", 0),
            ("999999", 999_999),
            ("202413", 202_413),
            ("000001", 1),
        ] {
            assert_eq!(number(text), expected, "{text}");
        }
        for text in [
            "",
            "20240",
            "2024041",
            "2024-4",
            " 02404",
            "１２",
            "2024\u{e9}",
        ] {
            assert_eq!(number(text), NOT_SIX_DIGITS, "{text:?}");
        }
        // Every byte in every place, the other five digits: six digits exactly when it is one.
        for place in 0..6 {
            for byte in 0..=u8::MAX {
                let mut bytes = *b"209817";
                bytes[place] = byte;
                let expected = if byte.is_ascii_digit() {
                    std::str::from_utf8(&bytes)
                        .ok()
                        .and_then(|t| t.parse().ok())
                } else {
                    None
                };
                let found = six_digit_number(make_view(&bytes, 0, 0));
                assert_eq!(
                    found,
                    expected.unwrap_or(NOT_SIX_DIGITS),
                    "byte {byte:#x} at {place}"
                );
            }
        }
    }

    /// A NULL slot's view may hold a month's bytes (a NULL from a filter or a cast keeps them).
    #[test]
    fn a_null_whose_bytes_spell_a_month_is_counted_as_null() {
        let views = StringViewArray::from(vec!["202404", "202404", "202405"]);
        let (views, buffers, _) = views.into_parts();
        let nulls = NullBuffer::from(vec![true, false, true]);
        let months = StringViewArray::new(views, buffers, Some(nulls));
        let flags = BooleanArray::from(vec![false, true, false]);
        let mut tallies = Tallies::new();
        tally_batch(&months, [&flags, &flags], &mut tallies).expect("tallied");
        let tally = |records, flagged| Tally {
            records,
            unknown_age: flagged,
            impossible_age: flagged,
        };
        assert_eq!(tallies[&Some("202404".to_owned())], tally(1, 0));
        assert_eq!(tallies[&Some("202405".to_owned())], tally(1, 0));
        assert_eq!(tallies[&None], tally(1, 1));
        assert_eq!(tallies.len(), 3);
    }

    #[test]
    fn eight_years_of_months_spread_over_the_table_as_if_at_random() {
        for format in ["{y}{m:02}", "{y}-{m:02}"] {
            let slots: std::collections::BTreeSet<usize> = (2019..2027)
                .flat_map(|y| (1..=12).map(move |m| (y, m)))
                .map(|(y, m)| {
                    let month = format
                        .replace("{y}", &y.to_string())
                        .replace("{m:02}", &format!("{m:02}"));
                    spread(make_view(month.as_bytes(), 0, 0), 512)
                })
                .collect();
            // 96 keys thrown at random into 512 slots fill about 87.
            assert!(slots.len() >= 80, "{format}: {} slots", slots.len());
        }
    }

    #[test]
    fn a_month_of_another_type_is_an_error() {
        let months = datafusion::arrow::array::Int32Array::from(vec![202404]);
        let flags = BooleanArray::from(vec![false]);
        let error =
            tally_batch(&months, [&flags, &flags], &mut Tallies::new()).expect_err("refused");
        assert!(error.to_string().contains("Int32"), "{error}");
    }
}
