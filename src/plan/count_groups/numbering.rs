//! How a grouping finds each row's group: each column's values numbered as they first appear
//! ([`Values`]), a group of several columns by its numbers ([`GroupTable`]), and the keys met
//! lately before either map ([`Recent`]).

use std::sync::Arc;

use datafusion::arrow::array::builder::make_view;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, GenericStringArray, MAX_INLINE_VIEW_LEN, OffsetSizeTrait,
    StringViewArray,
};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{HashMap, exec_err};
use datafusion::error::Result;

/// The groups of two or more columns, by their value numbers.
#[derive(Debug, Default)]
pub(super) struct GroupTable {
    /// While the columns' value numbers fit in `DENSE_BITS` side by side (`bits` each, the last
    /// column lowest), each slot's group, or `EMPTY`: a row's group is then one load, where a
    /// map of many groups costs a cache miss in most probes.
    dense: Vec<u32>,
    bits: Vec<u32>,
    /// Once they do not, groups by their key.
    hashed: Option<Numbered>,
}

/// At most 2^20 slots (4 MiB) side by side: 200 providers, 20 age bands and 3 sexes take 15.
const DENSE_BITS: u32 = 20;
const EMPTY: u32 = u32::MAX;

impl GroupTable {
    pub(super) fn size(&self) -> usize {
        let hashed = self.hashed.as_ref().map_or(0, Numbered::size);
        self.dense.capacity() * 4 + hashed
    }

    /// Each row's group, for the rows whose columns' value numbers are `numbers` (columns that
    /// have `values` values so far); new groups are added to `members`.
    pub(super) fn group_of_rows(
        &mut self,
        numbers: &[Vec<u32>],
        values: &[usize],
        members: &mut Vec<u128>,
    ) -> Vec<u32> {
        if self.hashed.is_none() {
            // Each column's bits: enough for its values so far.
            let bits: Vec<u32> = values
                .iter()
                .map(|&count| usize::BITS - count.saturating_sub(1).leading_zeros())
                .collect();
            if bits.iter().sum::<u32>() > DENSE_BITS {
                let keys = members.iter().enumerate().map(|(g, &key)| (key, g as u32));
                self.hashed = Some(Numbered {
                    numbers: keys.collect(),
                    recent: Recent::default(),
                });
                self.dense = Vec::new();
            } else if bits != self.bits {
                self.bits = bits;
                self.dense = vec![EMPTY; 1 << self.bits.iter().sum::<u32>()];
                for (group, &key) in members.iter().enumerate() {
                    let index = slot_of(&self.bits, |column| number_in(key, numbers.len(), column));
                    self.dense[index] = group as u32;
                }
            }
        }
        let rows = numbers.first().map_or(0, Vec::len);
        let key_of = |row: usize| group_key(numbers.iter().map(|column| column[row]));
        let mut group_of = Vec::with_capacity(rows);
        match &mut self.hashed {
            None => {
                group_of.extend((0..rows).map(|row| {
                    let slot = &mut self.dense[slot_of(&self.bits, |column| numbers[column][row])];
                    if *slot == EMPTY {
                        *slot = members.len() as u32;
                        members.push(key_of(row));
                    }
                    *slot
                }));
            }
            Some(groups) => {
                for row in 0..rows {
                    let key = key_of(row);
                    group_of.push(groups.number(key, || {
                        members.push(key);
                        members.len() as u32 - 1
                    }));
                }
            }
        }
        group_of
    }
}

/// A group's key: its columns' value numbers, 32 bits each, the last column lowest.
pub(super) fn group_key(numbers: impl Iterator<Item = u32>) -> u128 {
    numbers.fold(0, |key, number| (key << 32) | u128::from(number))
}

/// The value number in `column` (of `columns`) of the group whose key is `key`.
pub(super) fn number_in(key: u128, columns: usize, column: usize) -> u32 {
    (key >> (32 * (columns - 1 - column))) as u32
}

/// The dense slot of the group whose value number in each column is `number(column)`, with
/// `bits` bits for each column.
fn slot_of(bits: &[u32], number: impl Fn(usize) -> u32) -> usize {
    bits.iter().enumerate().fold(0, |index, (column, &bits)| {
        (index << bits) | number(column) as usize
    })
}

/// One column's distinct values, each numbered in the order it first appears.
#[derive(Debug, Default)]
pub(super) struct Values {
    /// Strings of at most 12 bytes, by their Arrow view (their length and every byte).
    short: Numbered,
    long: HashMap<Box<str>, u32>,
    null: Option<u32>,
    /// Each number's value.
    values: Vec<Option<Box<str>>>,
    bytes: usize,
}

impl Values {
    pub(super) fn count(&self) -> usize {
        self.values.len()
    }

    pub(super) fn size(&self) -> usize {
        self.bytes + self.values.len() * 48
    }

    /// Each row's value number.
    pub(super) fn numbers(&mut self, column: &ArrayRef) -> Result<Vec<u32>> {
        match column.data_type() {
            DataType::Utf8View => Ok(self.numbers_of_views(column.as_string_view())),
            DataType::Utf8 => Ok(self.numbers_of_text(column.as_string::<i32>())),
            DataType::LargeUtf8 => Ok(self.numbers_of_text(column.as_string::<i64>())),
            other => exec_err!("a grouping column became {other} during the scan"),
        }
    }

    fn numbers_of_views(&mut self, column: &StringViewArray) -> Vec<u32> {
        let views = column.views();
        let mut numbers = Vec::with_capacity(views.len());
        for (row, &view) in views.iter().enumerate() {
            let number = if column.is_null(row) {
                self.null_number()
            } else if view as u32 <= MAX_INLINE_VIEW_LEN {
                self.short_number(view, || column.value(row))
            } else {
                self.long_number(column.value(row))
            };
            numbers.push(number);
        }
        numbers
    }

    fn numbers_of_text<O: OffsetSizeTrait>(&mut self, column: &GenericStringArray<O>) -> Vec<u32> {
        (0..column.len())
            .map(|row| {
                if column.is_null(row) {
                    return self.null_number();
                }
                let text = column.value(row);
                if text.len() <= MAX_INLINE_VIEW_LEN as usize {
                    self.short_number(make_view(text.as_bytes(), 0, 0), || text)
                } else {
                    self.long_number(text)
                }
            })
            .collect()
    }

    fn null_number(&mut self) -> u32 {
        if let Some(number) = self.null {
            return number;
        }
        let number = self.values.len() as u32;
        self.values.push(None);
        self.null = Some(number);
        number
    }

    fn short_number<'t>(&mut self, view: u128, text: impl FnOnce() -> &'t str) -> u32 {
        self.short.number(view, || {
            let text = text();
            self.bytes += text.len();
            self.values.push(Some(text.into()));
            self.values.len() as u32 - 1
        })
    }

    fn long_number(&mut self, text: &str) -> u32 {
        if let Some(&number) = self.long.get(text) {
            return number;
        }
        let number = self.values.len() as u32;
        self.long.insert(text.into(), number);
        self.bytes += 2 * text.len();
        self.values.push(Some(text.into()));
        number
    }

    /// The values numbered `numbers`, as an array of `data_type`.
    pub(super) fn array(
        &self,
        data_type: &DataType,
        numbers: impl Iterator<Item = u32>,
    ) -> Result<ArrayRef> {
        let texts = numbers.map(|number| self.values[number as usize].as_deref());
        Ok(match data_type {
            DataType::Utf8View => Arc::new(texts.collect::<StringViewArray>()),
            DataType::Utf8 => Arc::new(texts.collect::<GenericStringArray<i32>>()),
            DataType::LargeUtf8 => Arc::new(texts.collect::<GenericStringArray<i64>>()),
            other => return exec_err!("cannot give a grouping column as {other}"),
        })
    }
}

/// Keys numbered as they first appear, with the keys met lately before the map.
#[derive(Debug, Default)]
struct Numbered {
    numbers: HashMap<u128, u32>,
    recent: Recent,
}

impl Numbered {
    /// `key`'s number: the one it was given, or, the first time, the one `first_seen` gives it.
    // Only the cache's hit is inlined into each row's loop: as one call, the map's code made every
    // row pay for the map's registers (3% more instructions in the whole report).
    #[inline]
    fn number(&mut self, key: u128, first_seen: impl FnOnce() -> u32) -> u32 {
        match self.recent.get(key) {
            Some(number) => number,
            None => self.number_from_map(key, first_seen),
        }
    }

    #[inline(never)]
    fn number_from_map(&mut self, key: u128, first_seen: impl FnOnce() -> u32) -> u32 {
        let number = *self.numbers.entry(key).or_insert_with(first_seen);
        self.recent.put(key, number);
        number
    }

    fn size(&self) -> usize {
        self.numbers.capacity() * 40
    }
}

/// The numbers of keys met lately, each in a slot chosen by a few of its bits: a key met before
/// (a grouping has a few hundred at most, typically) costs a multiplication and a comparison,
/// where the map costs a hash of all 16 bytes and a probe.
#[derive(Debug)]
pub(crate) struct Recent {
    slots: Box<[(u128, u32)]>,
}

/// 1024 slots, 32 KiB: a month column's values and most groupings' groups stay in them.
const RECENT_BITS: u32 = 10;

/// No key is this: no view of a string of 12 bytes or fewer (its length would be 2^32 - 1), and
/// no group (four columns of 2^32 - 1 values each).
const NO_KEY: u128 = u128::MAX;

impl Default for Recent {
    fn default() -> Self {
        Self {
            slots: vec![(NO_KEY, 0); 1 << RECENT_BITS].into_boxed_slice(),
        }
    }
}

impl Recent {
    #[inline]
    fn slot(key: u128) -> usize {
        let folded = (key as u64) ^ ((key >> 64) as u64).rotate_left(23);
        (folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - RECENT_BITS)) as usize
    }

    #[inline]
    pub(crate) fn get(&self, key: u128) -> Option<u32> {
        let (seen, number) = self.slots[Self::slot(key)];
        (seen == key).then_some(number)
    }

    #[inline]
    pub(crate) fn put(&mut self, key: u128, number: u32) {
        self.slots[Self::slot(key)] = (key, number);
    }
}
