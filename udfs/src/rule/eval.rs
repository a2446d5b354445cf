//! Evaluating a rule's predicates over one batch of Arrow arrays, with SQL three-valued logic.
//!
//! Each column's LIKE patterns are answered together, once per batch, as a bit mask per row; each
//! predicate then becomes a [`BooleanArray`] (NULL where SQL says unknown), and AND / OR / NOT use
//! Arrow's Kleene kernels, which are SQL's truth tables.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use arrow::buffer::{BooleanBuffer, NullBuffer};
use arrow::compute::kernels::boolean::{and_kleene, not, or_kleene};
use arrow::compute::kernels::zip::zip;
use arrow::compute::{cast, is_not_null, is_null};
use arrow::datatypes::{DataType, Float64Type};
use datafusion_common::{Result, exec_err, internal_datafusion_err};

use super::{Number, Predicate, Rule};
use crate::pattern::fold;
use crate::strings::map_selected_strings;

type Masks = (Vec<u64>, Option<NullBuffer>);

/// A column's match masks, and the rows they were worked out for (`None`: every row).
struct CachedMasks {
    masks: Masks,
    rows: Option<BooleanBuffer>,
}

/// The arrays of one batch, by rule column, and what has been worked out from them so far.
///
/// `active` holds the rows whose value can still change the answer: inside an AND, once a part is
/// FALSE for a row, the rest cannot make it anything but FALSE, so later parts read only the other
/// rows' strings (and inside an OR, likewise for TRUE). What an inactive row gets is unspecified.
pub(crate) struct BatchColumns<'a> {
    rule: &'a Rule,
    rows: usize,
    arrays: Vec<Option<ArrayRef>>,
    masks: Vec<Option<CachedMasks>>,
    active: Option<BooleanBuffer>,
}

impl<'a> BatchColumns<'a> {
    pub fn new(rule: &'a Rule, rows: usize) -> Self {
        Self {
            rule,
            rows,
            arrays: vec![None; rule.columns.len()],
            masks: (0..rule.columns.len()).map(|_| None).collect(),
            active: None,
        }
    }

    /// Evaluates `predicate` for the rows of `rows` (and of any selection already in force);
    /// other rows' values are unspecified.
    pub fn evaluate_for(
        &mut self,
        predicate: &Predicate,
        rows: &BooleanBuffer,
    ) -> Result<BooleanArray> {
        let outer = self.active.clone();
        self.active = Some(match &outer {
            Some(outer) => outer & rows,
            None => rows.clone(),
        });
        let result = self.evaluate(predicate);
        self.active = outer;
        result
    }

    pub fn set(&mut self, column: usize, array: ArrayRef) {
        self.arrays[column] = Some(array);
    }

    fn array(&self, column: usize) -> Result<&ArrayRef> {
        self.arrays
            .get(column)
            .and_then(Option::as_ref)
            .ok_or_else(|| internal_datafusion_err!("rule column {column} was not passed"))
    }

    pub fn evaluate(&mut self, predicate: &Predicate) -> Result<BooleanArray> {
        if let Some(table) = LikeTable::of(predicate) {
            if let Some(answers) = self.tabulate_in_one_pass(&table)? {
                return Ok(answers);
            }
            let (masks, nulls) = self.masks(table.column)?;
            let values = match table.as_word() {
                // The common case, a table of at most 64 entries indexed by the mask's low bits,
                // is one shift of a word per row rather than a lookup.
                Some((index_bits, truth)) => BooleanBuffer::collect_bool(masks.len(), |row| {
                    truth >> (masks[row] & index_bits) & 1 == 1
                }),
                None => BooleanBuffer::collect_bool(masks.len(), |row| table.value(masks[row])),
            };
            return Ok(BooleanArray::new(values, nulls.clone()));
        }
        match predicate {
            Predicate::Like {
                column,
                pattern,
                negated,
            } => {
                let (masks, nulls) = self.masks(*column)?;
                let values = BooleanBuffer::collect_bool(masks.len(), |row| {
                    (masks[row] >> pattern & 1 == 1) != *negated
                });
                Ok(BooleanArray::new(values, nulls.clone()))
            }
            Predicate::TextEquals {
                column,
                value,
                negated,
            } => {
                let (values, nulls) = map_selected_strings(
                    self.array(*column)?.as_ref(),
                    self.active.as_ref(),
                    |text: &str| equals_ci(text, value) != *negated,
                )?;
                Ok(BooleanArray::new(values.into(), nulls))
            }
            Predicate::Between {
                value,
                low,
                high,
                negated,
            } => {
                let numbers = self.number(value)?;
                let numbers = numbers.as_primitive::<Float64Type>();
                let values = BooleanBuffer::collect_bool(numbers.len(), |row| {
                    let v = numbers.value(row);
                    (*low <= v && v <= *high) != *negated
                });
                Ok(BooleanArray::new(values, numbers.logical_nulls()))
            }
            Predicate::IsNull { column, negated } => {
                let array = self.array(*column)?;
                Ok(if *negated {
                    is_not_null(array)?
                } else {
                    is_null(array)?
                })
            }
            Predicate::Not(inner) => Ok(not(&self.evaluate(inner)?)?),
            Predicate::And(parts) => self.fold(parts, false),
            Predicate::Or(parts) => self.fold(parts, true),
        }
    }

    /// AND or OR of `parts`, each part evaluated only for the rows the parts before it have not
    /// already decided (FALSE decides an AND, TRUE an OR).
    fn fold(&mut self, parts: &[Predicate], or: bool) -> Result<BooleanArray> {
        let mut parts = parts.iter();
        let Some(first) = parts.next() else {
            return exec_err!("empty AND/OR in rule {}", self.rule.name);
        };
        let mut result = self.evaluate(first)?;
        for part in parts {
            let open = undecided(&result, or);
            let next = self.evaluate_for(part, &open)?;
            result = if or {
                or_kleene(&result, &next)?
            } else {
                and_kleene(&result, &next)?
            };
        }
        Ok(result)
    }

    /// `table` of a `Utf8View` column evaluated straight from its strings by the dense screen,
    /// without working out match masks: `None` if the masks are already at hand, if few rows are
    /// active (reading only theirs is cheaper), or if the dense screen cannot take this column.
    fn tabulate_in_one_pass(&self, table: &LikeTable) -> Result<Option<BooleanArray>> {
        if self.masks[table.column].is_some() {
            return Ok(None);
        }
        let Some(strings) = self.array(table.column)?.as_string_view_opt() else {
            return Ok(None);
        };
        let sparse = |active: &BooleanBuffer| active.count_set_bits() * DENSE_SHARE < active.len();
        if self.active.as_ref().is_some_and(sparse) {
            return Ok(None);
        }
        let nulls = strings.logical_nulls();
        let rows = match (&nulls, &self.active) {
            (Some(nulls), Some(active)) => Some(nulls.inner() & active),
            (Some(nulls), None) => Some(nulls.inner().clone()),
            (None, active) => active.clone(),
        };
        let patterns = &self.rule.columns[table.column].patterns;
        Ok(patterns
            .evaluate_views(strings, rows.as_ref(), |mask| table.value(mask))
            .map(|values| BooleanArray::new(values, nulls)))
    }

    /// Every LIKE pattern of `column`, answered in one pass over its strings: the active rows'
    /// strings, or, if masks worked out earlier cover every active row, none.
    fn masks(&mut self, column: usize) -> Result<&Masks> {
        let covered = match (&self.masks[column], &self.active) {
            (None, _) => false,
            (Some(cached), _) if cached.rows.is_none() => true,
            (Some(_), None) => false,
            (Some(cached), Some(active)) => cached
                .rows
                .as_ref()
                .is_some_and(|rows| (active & &!rows).count_set_bits() == 0),
        };
        if !covered {
            let patterns = &self.rule.columns[column].patterns;
            let masks =
                map_selected_strings(self.array(column)?.as_ref(), self.active.as_ref(), patterns)?;
            self.masks[column] = Some(CachedMasks {
                masks,
                rows: self.active.clone(),
            });
        }
        self.masks[column]
            .as_ref()
            .map(|cached| &cached.masks)
            .ok_or_else(|| internal_datafusion_err!("masks of column {column} missing"))
    }

    fn number(&self, number: &Number) -> Result<ArrayRef> {
        match number {
            Number::Column(column) => {
                let array = self.array(*column)?;
                if array.data_type() == &DataType::Float64 {
                    Ok(Arc::clone(array))
                } else {
                    Ok(cast(array, &DataType::Float64)?)
                }
            }
            Number::IsNull(first, second) => {
                let first = self.number(first)?;
                let second = self.number(second)?;
                Ok(zip(&is_not_null(&first)?, &first, &second)?)
            }
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }
}

/// The rows `result` leaves open: for an AND, those not FALSE; for an OR, those not TRUE.
fn undecided(result: &BooleanArray, decided_by: bool) -> BooleanBuffer {
    let decided = if decided_by {
        result.values().clone()
    } else {
        !result.values()
    };
    match result.nulls() {
        // A NULL is decided by neither.
        Some(nulls) => !&(&decided & nulls.inner()),
        None => !&decided,
    }
}

/// A predicate made only of LIKEs on one column, tabulated: its value for every combination of
/// its patterns' matches, so a row's value is one lookup by the row's match bits. A NULL in the
/// column makes every LIKE unknown, and so the whole predicate: the column's NULLs are the result's.
struct LikeTable {
    column: usize,
    /// The pattern each bit of a table index stands for.
    patterns: Vec<usize>,
    /// The patterns are bits `0..patterns.len()` of the match mask, in order.
    contiguous: bool,
    table: Vec<bool>,
}

/// The dense screen reads every row; below one active row in this many, reading only the active
/// rows' strings is cheaper.
const DENSE_SHARE: usize = 4;

/// Tables up to 2^10 entries; larger predicates are evaluated clause by clause.
const MAX_TABLE_BITS: usize = 10;

impl LikeTable {
    fn of(predicate: &Predicate) -> Option<Self> {
        let mut column = None;
        let mut patterns = Vec::new();
        if !like_atoms(predicate, &mut column, &mut patterns) || patterns.len() > MAX_TABLE_BITS {
            return None;
        }
        patterns.sort_unstable();
        let table = (0..1usize << patterns.len())
            .map(|index| {
                let matched = |pattern: usize| {
                    patterns
                        .iter()
                        .position(|&p| p == pattern)
                        .is_some_and(|bit| index >> bit & 1 == 1)
                };
                truth(predicate, &matched)
            })
            .collect();
        let contiguous = patterns.iter().enumerate().all(|(bit, &p)| bit == p);
        Some(Self {
            column: column?,
            patterns,
            contiguous,
            table,
        })
    }

    /// For a contiguous table of at most 64 entries: the mask bits that index it, and the table
    /// as the bits of a word.
    fn as_word(&self) -> Option<(u64, u64)> {
        (self.contiguous && self.table.len() <= 64).then(|| {
            let truth = (0..).zip(&self.table).fold(0u64, |word, (index, &value)| {
                word | u64::from(value) << index
            });
            (self.table.len() as u64 - 1, truth)
        })
    }

    #[inline]
    fn value(&self, mask: u64) -> bool {
        let index = if self.contiguous {
            (mask & ((1u64 << self.patterns.len()) - 1)) as usize
        } else {
            self.patterns
                .iter()
                .enumerate()
                .fold(0, |index, (bit, &p)| {
                    index | ((mask >> p & 1) as usize) << bit
                })
        };
        self.table[index]
    }
}

/// Collects the LIKE patterns of `predicate`; false if it tests anything but LIKEs on one column.
fn like_atoms(
    predicate: &Predicate,
    column: &mut Option<usize>,
    patterns: &mut Vec<usize>,
) -> bool {
    match predicate {
        Predicate::Like {
            column: c, pattern, ..
        } => {
            if column.is_some_and(|known| known != *c) {
                return false;
            }
            *column = Some(*c);
            if !patterns.contains(pattern) {
                patterns.push(*pattern);
            }
            true
        }
        Predicate::Not(inner) => like_atoms(inner, column, patterns),
        Predicate::And(parts) | Predicate::Or(parts) => {
            parts.iter().all(|p| like_atoms(p, column, patterns))
        }
        _ => false,
    }
}

/// Two-valued evaluation of a LIKE-only predicate, given which patterns matched.
fn truth(predicate: &Predicate, matched: &dyn Fn(usize) -> bool) -> bool {
    match predicate {
        Predicate::Like {
            pattern, negated, ..
        } => matched(*pattern) != *negated,
        Predicate::Not(inner) => !truth(inner, matched),
        Predicate::And(parts) => parts.iter().all(|p| truth(p, matched)),
        Predicate::Or(parts) => parts.iter().any(|p| truth(p, matched)),
        _ => false,
    }
}

/// `text = value` as SQL Server compares `varchar` under a case-insensitive collation: case folded,
/// trailing blanks not significant.
fn equals_ci(text: &str, value: &str) -> bool {
    let (text, value) = (text.trim_end_matches(' '), value.trim_end_matches(' '));
    if text.is_ascii() && value.is_ascii() {
        return text.eq_ignore_ascii_case(value);
    }
    text.chars().map(fold).eq(value.chars().map(fold))
}

#[cfg(test)]
mod tests {
    use super::equals_ci;

    #[test]
    fn text_equality_follows_the_collation() {
        assert!(equals_ci("02", "02"));
        assert!(equals_ci("02  ", "02"));
        assert!(!equals_ci(" 02", "02"));
        assert!(!equals_ci("2", "02"));
        assert!(equals_ci("Ab", "aB"));
        assert!(equals_ci("É", "é"));
        assert!(!equals_ci("", "02"));
    }
}
