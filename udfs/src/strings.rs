//! One code path for every string encoding a column can arrive in.

use arrow::array::{Array, AsArray, BooleanArray};
use arrow::buffer::{BooleanBuffer, Buffer, NullBuffer};
use arrow::datatypes::DataType;
use datafusion_common::{Result, ScalarValue, exec_err};

/// Is `data_type` a string type these functions accept (plain, large, view or dictionary-encoded)?
pub fn is_string_type(data_type: &DataType) -> bool {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, values) => is_string_type(values),
        _ => false,
    }
}

/// Whether `test` holds for each row of `array` that `selected` marks (every row if `None`), as a
/// boolean array with the column's NULLs; the other rows are FALSE. Strings are read in place
/// (none is copied); a dictionary's distinct values are tested once each.
pub fn test_strings(
    array: &dyn Array,
    selected: Option<&BooleanBuffer>,
    mut test: impl StringTest,
) -> Result<BooleanArray> {
    if let Some(dictionary) = array.as_any_dictionary_opt() {
        if dictionary.values().is_empty() {
            // Every key is NULL; arrow cannot normalise keys into an empty dictionary.
            return Ok(BooleanArray::new_null(array.len()));
        }
        let distinct = test_strings(dictionary.values().as_ref(), None, test)?;
        let keys = dictionary.normalized_keys();
        let values = BooleanBuffer::collect_bool(keys.len(), |row| {
            keys.get(row)
                .is_some_and(|&key| key < distinct.len() && distinct.value(key))
        });
        return Ok(BooleanArray::new(values, dictionary.logical_nulls()));
    }
    let nulls = array.logical_nulls();
    let rows = rows_to_read(nulls.as_ref(), selected);
    let mut words = vec![0u64; array.len().div_ceil(64)];
    match array.data_type() {
        DataType::Utf8 => {
            let strings = array.as_string::<i32>();
            for_rows(rows.as_ref(), array.len(), &mut words, &mut test, |row| {
                strings.value(row)
            });
        }
        DataType::LargeUtf8 => {
            let strings = array.as_string::<i64>();
            for_rows(rows.as_ref(), array.len(), &mut words, &mut test, |row| {
                strings.value(row)
            });
        }
        DataType::Utf8View => {
            let strings = array.as_string_view();
            for_rows(rows.as_ref(), array.len(), &mut words, &mut test, |row| {
                strings.value(row)
            });
        }
        DataType::Null => return Ok(BooleanArray::new_null(array.len())),
        other => return exec_err!("expected a string column, got {other}"),
    }
    let values = BooleanBuffer::new(Buffer::from_vec(words), 0, array.len());
    Ok(BooleanArray::new(values, nulls))
}

/// The rows whose strings a test reads: those not NULL in `nulls` and marked in `selected`
/// (`None` on either side: every row); `None` when that is every row.
pub(crate) fn rows_to_read(
    nulls: Option<&NullBuffer>,
    selected: Option<&BooleanBuffer>,
) -> Option<BooleanBuffer> {
    match (nulls, selected) {
        (Some(nulls), Some(selected)) => Some(nulls.inner() & selected),
        (Some(nulls), None) => Some(nulls.inner().clone()),
        (None, selected) => selected.cloned(),
    }
}

/// What [`test_strings`] asks of each string. Any `FnMut(&str) -> bool` is one; a test whose work
/// per string is a chain of dependent steps can also take two strings at once, so that the
/// processor runs the two chains side by side.
pub trait StringTest {
    fn one(&mut self, text: &str) -> bool;

    fn two(&mut self, first: &str, second: &str) -> (bool, bool) {
        (self.one(first), self.one(second))
    }
}

impl<F: FnMut(&str) -> bool> StringTest for F {
    fn one(&mut self, text: &str) -> bool {
        self(text)
    }
}

/// Sets the bit in `words` of each row set in `rows` (all `len` rows if `None`) whose string
/// passes `test`, two rows at a time. Walking the bitmap's set bits, rather than testing each
/// row, keeps a column with scattered NULLs free of branch misses.
fn for_rows<'a>(
    rows: Option<&BooleanBuffer>,
    len: usize,
    words: &mut [u64],
    test: &mut impl StringTest,
    text: impl Fn(usize) -> &'a str,
) {
    match rows {
        Some(rows) => in_pairs(rows.set_indices(), words, test, text),
        None => in_pairs(0..len, words, test, text),
    }
}

fn in_pairs<'a>(
    mut rows: impl Iterator<Item = usize>,
    words: &mut [u64],
    test: &mut impl StringTest,
    text: impl Fn(usize) -> &'a str,
) {
    let mut set = |row: usize, yes: bool| {
        if let Some(word) = words.get_mut(row / 64) {
            *word |= u64::from(yes) << (row % 64);
        }
    };
    while let Some(first) = rows.next() {
        match rows.next() {
            Some(second) => {
                let (a, b) = test.two(text(first), text(second));
                set(first, a);
                set(second, b);
            }
            None => set(first, test.one(text(first))),
        }
    }
}

/// A scalar string argument's text (`None` for NULL), whatever its encoding, dictionary included.
pub(crate) fn scalar_str(value: &ScalarValue) -> Result<Option<&str>> {
    match value {
        ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s) => {
            Ok(s.as_deref())
        }
        ScalarValue::Dictionary(_, inner) => scalar_str(inner),
        ScalarValue::Null => Ok(None),
        other => exec_err!("expected a string, got {}", other.data_type()),
    }
}

/// Every row of `array` as a borrowed string (`None` for NULL), for code that needs rows side by side.
pub fn collect_strings(array: &dyn Array) -> Result<Vec<Option<&str>>> {
    if let Some(dictionary) = array.as_any_dictionary_opt() {
        if dictionary.values().is_empty() {
            return Ok(vec![None; array.len()]);
        }
        let distinct = collect_strings(dictionary.values().as_ref())?;
        let nulls = dictionary.logical_nulls();
        return Ok(dictionary
            .normalized_keys()
            .into_iter()
            .enumerate()
            .map(|(row, key)| {
                let valid = nulls.as_ref().is_none_or(|n| n.is_valid(row));
                if valid {
                    distinct.get(key).copied().flatten()
                } else {
                    None
                }
            })
            .collect());
    }
    Ok(match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().iter().collect(),
        DataType::LargeUtf8 => array.as_string::<i64>().iter().collect(),
        DataType::Utf8View => array.as_string_view().iter().collect(),
        DataType::Null => vec![None; array.len()],
        other => return exec_err!("expected a string column, got {other}"),
    })
}
