//! Evaluating a rule's predicates over one batch of Arrow arrays, with SQL three-valued logic.
//!
//! A predicate made only of LIKEs on one column is tabulated: its value for every combination of
//! its patterns' matches, which the column's [`PatternSet`](crate::multi::PatternSet) works out in
//! one pass per string. Each predicate becomes a [`BooleanArray`] (NULL where SQL says unknown),
//! and AND / OR / NOT use Arrow's Kleene kernels, which are SQL's truth tables.

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use arrow::buffer::BooleanBuffer;
use arrow::compute::kernels::boolean::{and_kleene, not, or_kleene};
use arrow::compute::{is_not_null, is_null};
use datafusion_common::{Result, exec_err, internal_datafusion_err, internal_err};

use super::between::between;
use super::{Predicate, Rule};
use crate::multi::Tabulated;
use crate::pattern::fold;
use crate::strings::{rows_to_read, test_strings};

/// The arrays of one batch, by rule column, and what has been worked out from them so far.
///
/// `active` holds the rows whose value can still change the answer: inside an AND, once a part is
/// FALSE for a row, the rest cannot make it anything but FALSE, so later parts read only the other
/// rows' strings (and inside an OR, likewise for TRUE). What an inactive row gets is unspecified.
pub(crate) struct BatchColumns<'a> {
    rule: &'a Rule,
    rows: usize,
    arrays: Vec<Option<ArrayRef>>,
    active: Option<BooleanBuffer>,
}

impl<'a> BatchColumns<'a> {
    pub fn new(rule: &'a Rule, rows: usize) -> Self {
        Self {
            rule,
            rows,
            arrays: vec![None; rule.columns.len()],
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

    pub fn array(&self, column: usize) -> Result<&ArrayRef> {
        self.arrays
            .get(column)
            .and_then(Option::as_ref)
            .ok_or_else(|| internal_datafusion_err!("rule column {column} was not passed"))
    }

    pub fn evaluate(&mut self, predicate: &Predicate) -> Result<BooleanArray> {
        if let Some(table) = LikeTable::of(predicate) {
            return self.tabulate(&table);
        }
        match predicate {
            Predicate::Like { .. } => {
                internal_err!("a LIKE is always tabulated, in rule {}", self.rule.name)
            }
            Predicate::TextEquals {
                column,
                value,
                negated,
            } => {
                let equals = |text: &str| equals_ci(text, value) != *negated;
                test_strings(self.array(*column)?.as_ref(), self.active.as_ref(), equals)
            }
            Predicate::Between {
                value,
                low,
                high,
                negated,
            } => {
                let column = |index| self.array(index);
                let within = between(value, &column, *low, *high)?;
                Ok(if *negated { not(&within)? } else { within })
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

    /// `table`'s value for each active row, from its column's strings: by the dense screen for a
    /// `Utf8View` column when enough rows are active, else string by string for the active rows.
    fn tabulate(&self, table: &LikeTable) -> Result<BooleanArray> {
        let array = self.array(table.column)?;
        let patterns = &self.rule.columns[table.column].patterns;
        let truth = |mask: u64| table.value(mask);
        let dense = |active: &BooleanBuffer| active.count_set_bits() * DENSE_SHARE >= active.len();
        if let Some(strings) = array.as_string_view_opt()
            && self.active.as_ref().is_none_or(dense)
        {
            let nulls = strings.logical_nulls();
            let rows = rows_to_read(nulls.as_ref(), self.active.as_ref());
            if let Some(values) = patterns.evaluate_views(strings, rows.as_ref(), truth) {
                return Ok(BooleanArray::new(values, nulls));
            }
        }
        let set = Tabulated {
            set: patterns,
            truth,
        };
        test_strings(array.as_ref(), self.active.as_ref(), set)
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

/// The dense screen reads every row; with fewer than one active row in this many, reading only
/// the active rows' strings is cheaper.
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
