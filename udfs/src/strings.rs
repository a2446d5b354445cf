//! One code path for every string encoding a column can arrive in.

use arrow::array::{Array, AsArray, StringViewArray};
use arrow::buffer::{BooleanBuffer, NullBuffer};
use arrow::datatypes::DataType;
use datafusion_common::{Result, exec_err};

/// Is `data_type` a string type these functions accept (plain, large, view or dictionary-encoded)?
pub fn is_string_type(data_type: &DataType) -> bool {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, values) => is_string_type(values),
        _ => false,
    }
}

/// Applies `f` to every non-NULL string of `array`, in place (no string is copied).
///
/// Returns one value per row (`T::default()` for NULL rows) and the rows' NULLs. A dictionary's
/// distinct values are evaluated once each, then spread to the rows through the keys.
pub fn map_strings<T, F>(array: &dyn Array, f: F) -> Result<(Vec<T>, Option<NullBuffer>)>
where
    T: Copy + Default,
    F: FnMut(&str) -> T,
{
    map_selected_strings(array, None, f)
}

/// [`map_strings`] for only the rows `selected` marks (all rows if `None`); the other rows get
/// `T::default()`. A caller that knows most rows cannot matter saves reading their strings.
pub fn map_selected_strings<T, F>(
    array: &dyn Array,
    selected: Option<&BooleanBuffer>,
    mut f: F,
) -> Result<(Vec<T>, Option<NullBuffer>)>
where
    T: Copy + Default,
    F: StringMapper<T>,
{
    if let Some(dictionary) = array.as_any_dictionary_opt() {
        if dictionary.values().is_empty() {
            // Every key is NULL; arrow cannot normalise keys into an empty dictionary.
            return Ok((
                vec![T::default(); array.len()],
                Some(NullBuffer::new_null(array.len())),
            ));
        }
        let (distinct, _) = map_selected_strings(dictionary.values().as_ref(), None, f)?;
        let values = dictionary
            .normalized_keys()
            .into_iter()
            .map(|key| distinct.get(key).copied().unwrap_or_default())
            .collect();
        return Ok((values, dictionary.logical_nulls()));
    }
    let nulls = array.logical_nulls();
    let mut values = vec![T::default(); array.len()];
    let rows = match (&nulls, selected) {
        (Some(nulls), Some(selected)) => Some(nulls.inner() & selected),
        (Some(nulls), None) => Some(nulls.inner().clone()),
        (None, Some(selected)) => Some(selected.clone()),
        (None, None) => None,
    };
    match array.data_type() {
        DataType::Utf8 => {
            let strings = array.as_string::<i32>();
            for_rows(rows.as_ref(), &mut values, &mut f, |row| strings.value(row));
        }
        DataType::LargeUtf8 => {
            let strings = array.as_string::<i64>();
            for_rows(rows.as_ref(), &mut values, &mut f, |row| strings.value(row));
        }
        DataType::Utf8View => {
            let strings = array.as_string_view();
            if !f.map_views(strings, rows.as_ref(), &mut values) {
                for_rows(rows.as_ref(), &mut values, &mut f, |row| strings.value(row));
            }
        }
        DataType::Null => return Ok((values, Some(NullBuffer::new_null(array.len())))),
        other => return exec_err!("expected a string column, got {other}"),
    }
    Ok((values, nulls))
}

/// What [`map_selected_strings`] applies to each string. Any `FnMut(&str) -> T` is one; a mapper
/// whose work per string is a chain of dependent steps can also take two strings at once, so that
/// the processor runs the two chains side by side.
pub trait StringMapper<T> {
    fn one(&mut self, text: &str) -> T;

    fn two(&mut self, first: &str, second: &str) -> (T, T) {
        (self.one(first), self.one(second))
    }

    /// For a `Utf8View` column: sets `values[row]` for the rows of `rows` (every row if `None`;
    /// never a NULL row) itself, reading views and strings as it likes, and returns true; or
    /// returns false, having written nothing, to be given each string instead. Rows it leaves
    /// unwritten keep `T::default()`.
    fn map_views(
        &mut self,
        _strings: &StringViewArray,
        _rows: Option<&BooleanBuffer>,
        _values: &mut [T],
    ) -> bool {
        false
    }
}

impl<T, F: FnMut(&str) -> T> StringMapper<T> for F {
    fn one(&mut self, text: &str) -> T {
        self(text)
    }
}

/// Sets `values[row]` to the mapped string of each row set in `rows` (all rows if `None`), two rows
/// at a time. Walking the bitmap's set bits, rather than testing each row, keeps a column with
/// scattered NULLs free of branch misses.
fn for_rows<'a, T>(
    rows: Option<&BooleanBuffer>,
    values: &mut [T],
    mapper: &mut impl StringMapper<T>,
    text: impl Fn(usize) -> &'a str,
) {
    match rows {
        Some(rows) => in_pairs(rows.set_indices(), values, mapper, text),
        None => in_pairs(0..values.len(), values, mapper, text),
    }
}

pub(crate) fn in_pairs<'a, T>(
    mut rows: impl Iterator<Item = usize>,
    values: &mut [T],
    mapper: &mut impl StringMapper<T>,
    text: impl Fn(usize) -> &'a str,
) {
    while let Some(first) = rows.next() {
        match rows.next() {
            Some(second) => {
                let (a, b) = mapper.two(text(first), text(second));
                values[first] = a;
                values[second] = b;
            }
            None => values[first] = mapper.one(text(first)),
        }
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
