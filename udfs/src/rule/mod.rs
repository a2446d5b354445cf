//! EBI rules as data: a rule file holds a published code script, pasted as published; it is parsed
//! into a [`Rule`], whose predicates the rule functions evaluate over Arrow arrays.

mod between;
mod convert;
mod error;
mod eval;
mod explain;
mod file;
mod function;

use std::fmt;

pub use error::{RuleFileError, split_location};
pub use explain::{ExplainFunction, OUTCOMES, Outcome};
pub use file::parse_rule_file;
pub use function::{RuleFunction, RuleOutput, rule_functions};

use crate::multi::PatternSet;

/// What a rule needs of a column: text (LIKE, `=`/`<>` against strings) or a number (BETWEEN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// Compared as `varchar`: LIKE, `=`, `<>`.
    Text,
    /// Compared as a number: BETWEEN.
    Number,
}

impl fmt::Display for ColumnKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Text => "text",
            Self::Number => "number",
        })
    }
}

/// A column a rule names, identified by its name without table qualifier, compared case-insensitively.
#[derive(Debug, Clone)]
pub struct RuleColumn {
    /// As first written in the rule file, without qualifier: `Der_Procedure_All`.
    pub name: String,
    /// The table qualifiers the rule wrote before it (`opa`, `apcs`), for documentation.
    pub qualifiers: Vec<String>,
    /// What the rule does with it.
    pub kind: ColumnKind,
    /// Every LIKE pattern the rule applies to this column, answered together in one pass.
    pub patterns: PatternSet,
}

/// A boolean expression of a rule, over the rule's columns (indices into [`Rule::columns`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    /// `column [NOT] LIKE pattern`, with `pattern` an index into the column's [`PatternSet`].
    Like {
        /// The column tested.
        column: usize,
        /// Its pattern's index in the column's [`PatternSet`].
        pattern: usize,
        /// `NOT LIKE`.
        negated: bool,
    },
    /// `column = 'value'` or `column <> 'value'`, compared as SQL Server compares `varchar`:
    /// case-insensitively, trailing blanks not significant.
    TextEquals {
        /// The column compared.
        column: usize,
        /// The string literal it is compared with.
        value: String,
        /// `<>` rather than `=`.
        negated: bool,
    },
    /// `value [NOT] BETWEEN low AND high`, both ends inclusive.
    Between {
        /// The value tested.
        value: Number,
        /// The low end, included.
        low: f64,
        /// The high end, included.
        high: f64,
        /// `NOT BETWEEN`.
        negated: bool,
    },
    /// `column IS [NOT] NULL`
    IsNull {
        /// The column tested.
        column: usize,
        /// `IS NOT NULL`.
        negated: bool,
    },
    /// `NOT p`, in SQL's three-valued logic.
    Not(Box<Predicate>),
    /// All of the parts (three-valued AND).
    And(Vec<Predicate>),
    /// Any of the parts (three-valued OR).
    Or(Vec<Predicate>),
}

/// A numeric expression of a rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Number {
    /// A column's value (an index into [`Rule::columns`]).
    Column(usize),
    /// `ISNULL(a, b)`: `a` unless it is NULL, else `b`.
    IsNull(Box<Number>, Box<Number>),
}

impl Rule {
    /// The columns `ebi_<rule>` (and `ebi_<rule>_explain`) take, in argument order.
    pub fn flag_arguments(&self) -> Vec<&str> {
        self.flag_argument_columns()
            .into_iter()
            .map(|c| self.columns[c].name.as_str())
            .collect()
    }

    /// [`Rule::flag_arguments`] as indices into the rule's columns.
    pub(crate) fn flag_argument_columns(&self) -> Vec<usize> {
        function::arguments_of(std::iter::once(&self.inclusion).chain(&self.exclusion))
    }

    /// The rule's version and effective date for people to read: `"version 2024-25 v1.2, effective
    /// 2024-04-01"`; empty when the file gives neither.
    pub fn edition(&self) -> String {
        let parts: Vec<String> = [("version", &self.version), ("effective", &self.effective)]
            .into_iter()
            .filter_map(|(label, value)| value.as_ref().map(|v| format!("{label} {v}")))
            .collect();
        parts.join(", ")
    }
}

impl Predicate {
    /// The columns this predicate reads, in order of first appearance, without repeats.
    pub fn columns(&self) -> Vec<usize> {
        let mut found = Vec::new();
        self.collect_columns(&mut found);
        found
    }

    fn collect_columns(&self, found: &mut Vec<usize>) {
        let mut add = |column: usize| {
            if !found.contains(&column) {
                found.push(column);
            }
        };
        match self {
            Self::Like { column, .. }
            | Self::TextEquals { column, .. }
            | Self::IsNull { column, .. } => add(*column),
            Self::Between { value, .. } => value.collect_columns(found),
            Self::Not(inner) => inner.collect_columns(found),
            Self::And(parts) | Self::Or(parts) => {
                parts.iter().for_each(|p| p.collect_columns(found));
            }
        }
    }

    /// The top-level conjuncts: `a AND (b AND c)` gives `[a, b, c]`.
    pub fn conjuncts(&self) -> Vec<&Predicate> {
        match self {
            Self::And(parts) => parts.iter().flat_map(Predicate::conjuncts).collect(),
            other => vec![other],
        }
    }
}

impl Number {
    fn collect_columns(&self, found: &mut Vec<usize>) {
        match self {
            Self::Column(column) => {
                if !found.contains(column) {
                    found.push(*column);
                }
            }
            Self::IsNull(first, second) => {
                first.collect_columns(found);
                second.collect_columns(found);
            }
        }
    }
}

/// One EBI rule, parsed from its rule file.
#[derive(Debug, Clone)]
pub struct Rule {
    /// From the file name: `lower_back_imaging.sql` gives `lower_back_imaging`.
    pub name: String,
    /// The `-- @title` line, if any.
    pub title: Option<String>,
    /// The `-- @version` line, if any: which publication of the rule this is.
    pub version: Option<String>,
    /// The `-- @effective` line, if any: from when the programme applies it.
    pub effective: Option<String>,
    /// The file the rule came from, as given to the parser.
    pub file: String,
    /// The file's text, byte for byte.
    pub source: String,
    /// The value of the code script's `THEN`: `2S_lower_back_imaging`.
    pub flag: String,
    /// The columns the rule names, in the order it first names them.
    pub columns: Vec<RuleColumn>,
    /// The code script's `WHEN` condition.
    pub inclusion: Predicate,
    /// The exclusions (all of them, joined by AND as published); a record passes when this holds.
    pub exclusion: Option<Predicate>,
}
