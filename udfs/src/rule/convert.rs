//! From sqlparser's T-SQL syntax tree to a rule's [`Predicate`]s, refusing what a rule cannot mean.

use sqlparser::ast::{
    BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Spanned, UnaryOperator,
    Value,
};

use super::error::RuleFileError;
use super::{ColumnKind, Number, Predicate};
use crate::pattern::LikePattern;

/// A column as the converter learns about it.
pub(super) struct ColumnDraft {
    pub name: String,
    pub qualifiers: Vec<String>,
    /// `None` while only `IS NULL` has named it.
    pub kind: Option<ColumnKind>,
    pub patterns: Vec<LikePattern>,
}

pub(super) struct Converter<'a> {
    file: &'a str,
    columns: Vec<ColumnDraft>,
}

const SUPPORTED: &str = "rule files support [NOT] LIKE, [NOT] BETWEEN, =, <>, IS [NOT] NULL, \
                         ISNULL(), AND, OR, NOT and parentheses";

impl<'a> Converter<'a> {
    pub fn new(file: &'a str) -> Self {
        Self {
            file,
            columns: Vec::new(),
        }
    }

    pub fn into_columns(self) -> Vec<ColumnDraft> {
        self.columns
    }

    fn error(&self, at: &Expr, message: String) -> RuleFileError {
        let start = at.span().start;
        RuleFileError {
            file: self.file.to_owned(),
            line: usize::try_from(start.line).unwrap_or(0),
            column: usize::try_from(start.column).ok().filter(|&c| c > 0),
            message,
        }
    }

    /// `WHEN condition THEN 'flag'`: the condition and the flag.
    pub fn code_script(
        &mut self,
        condition: &Expr,
        result: &Expr,
    ) -> Result<(Predicate, String), RuleFileError> {
        let flag = string_literal(result).ok_or_else(|| {
            self.error(
                result,
                format!("expected a string after THEN, found '{result}'"),
            )
        })?;
        Ok((self.predicate(condition)?, flag.to_owned()))
    }

    pub fn predicate(&mut self, expr: &Expr) -> Result<Predicate, RuleFileError> {
        match expr {
            Expr::Nested(inner) => self.predicate(inner),
            Expr::BinaryOp { left, op, right } => match op {
                BinaryOperator::And => Ok(Predicate::And(vec![
                    self.predicate(left)?,
                    self.predicate(right)?,
                ])),
                BinaryOperator::Or => Ok(Predicate::Or(vec![
                    self.predicate(left)?,
                    self.predicate(right)?,
                ])),
                BinaryOperator::Eq | BinaryOperator::NotEq => {
                    let negated = *op == BinaryOperator::NotEq;
                    let (column, value) = match (string_literal(left), string_literal(right)) {
                        (None, Some(value)) => (left, value),
                        (Some(value), None) => (right, value),
                        _ => {
                            return Err(self.error(
                                expr,
                                format!("expected a column compared with a string, found '{expr}'"),
                            ));
                        }
                    };
                    Ok(Predicate::TextEquals {
                        column: self.column(column, Some(ColumnKind::Text))?,
                        value: value.to_owned(),
                        negated,
                    })
                }
                _ => Err(self.error(expr, format!("unsupported operator {op}: {SUPPORTED}"))),
            },
            Expr::UnaryOp {
                op: UnaryOperator::Not,
                expr: inner,
            } => Ok(Predicate::Not(Box::new(self.predicate(inner)?))),
            Expr::Like {
                negated,
                any: false,
                expr: text,
                pattern,
                escape_char,
            } => {
                let source = string_literal(pattern).ok_or_else(|| {
                    self.error(
                        pattern,
                        format!("expected a string pattern after LIKE, found '{pattern}'"),
                    )
                })?;
                let escape = match escape_char.as_ref().map(|e| &e.value) {
                    None | Some(Value::Null) => None,
                    Some(Value::SingleQuotedString(c) | Value::NationalStringLiteral(c)) => {
                        Some(c.as_str())
                    }
                    Some(other) => {
                        return Err(self.error(
                            pattern,
                            format!("expected a one-character string after ESCAPE, found {other}"),
                        ));
                    }
                };
                let compiled = LikePattern::compile_with_escape(source, escape)
                    .map_err(|e| self.error(pattern, e.to_string()))?;
                let column = self.column(text, Some(ColumnKind::Text))?;
                let patterns = &mut self.columns[column].patterns;
                let index = match patterns.iter().position(|p| *p == compiled) {
                    Some(index) => index,
                    None => {
                        patterns.push(compiled);
                        patterns.len() - 1
                    }
                };
                Ok(Predicate::Like {
                    column,
                    pattern: index,
                    negated: *negated,
                })
            }
            Expr::Between {
                expr: value,
                negated,
                low,
                high,
            } => Ok(Predicate::Between {
                value: self.number(value)?,
                low: self.constant(low)?,
                high: self.constant(high)?,
                negated: *negated,
            }),
            Expr::IsNull(inner) | Expr::IsNotNull(inner) => Ok(Predicate::IsNull {
                column: self.column(inner, None)?,
                negated: matches!(expr, Expr::IsNotNull(_)),
            }),
            other => Err(self.error(
                other,
                format!("unsupported expression '{other}': {SUPPORTED}"),
            )),
        }
    }

    fn number(&mut self, expr: &Expr) -> Result<Number, RuleFileError> {
        match expr {
            Expr::Nested(inner) => self.number(inner),
            Expr::Function(function) => {
                let name = function.name.to_string();
                if !name.eq_ignore_ascii_case("isnull") {
                    return Err(self.error(
                        expr,
                        format!("unsupported function {name}(): only ISNULL() is supported"),
                    ));
                }
                let args = match &function.args {
                    FunctionArguments::List(list) => list
                        .args
                        .iter()
                        .map(|arg| match arg {
                            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                            _ => None,
                        })
                        .collect::<Option<Vec<_>>>(),
                    _ => None,
                };
                match args.as_deref() {
                    Some([first, second]) => Ok(Number::IsNull(
                        Box::new(self.number(first)?),
                        Box::new(self.number(second)?),
                    )),
                    _ => Err(self.error(expr, "ISNULL() takes two arguments".into())),
                }
            }
            _ => Ok(Number::Column(self.column(expr, Some(ColumnKind::Number))?)),
        }
    }

    fn constant(&self, expr: &Expr) -> Result<f64, RuleFileError> {
        let value = match expr {
            Expr::Nested(inner) => return self.constant(inner),
            Expr::UnaryOp {
                op: UnaryOperator::Minus,
                expr: inner,
            } => return self.constant(inner).map(|v| -v),
            Expr::Value(value) => match &value.value {
                Value::Number(digits, _) => digits.parse::<f64>().ok(),
                _ => None,
            },
            _ => None,
        };
        value.ok_or_else(|| self.error(expr, format!("expected a number, found '{expr}'")))
    }

    /// The index of the column `expr` names, registering it on first sight.
    fn column(&mut self, expr: &Expr, kind: Option<ColumnKind>) -> Result<usize, RuleFileError> {
        let idents = match expr {
            Expr::Identifier(ident) => std::slice::from_ref(ident),
            Expr::CompoundIdentifier(idents) => idents.as_slice(),
            Expr::Nested(inner) => return self.column(inner, kind),
            _ => {
                return Err(self.error(expr, format!("expected a column name, found '{expr}'")));
            }
        };
        let Some((name, qualifier)) = idents.split_last() else {
            return Err(self.error(expr, "expected a column name".into()));
        };
        let qualifier = qualifier
            .iter()
            .map(|i| i.value.as_str())
            .collect::<Vec<_>>()
            .join(".");
        let index = match self
            .columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(&name.value))
        {
            Some(index) => index,
            None => {
                self.columns.push(ColumnDraft {
                    name: name.value.clone(),
                    qualifiers: Vec::new(),
                    kind: None,
                    patterns: Vec::new(),
                });
                self.columns.len() - 1
            }
        };
        let column = &self.columns[index];
        if let (Some(known), Some(wanted)) = (column.kind, kind)
            && known != wanted
        {
            return Err(self.error(
                expr,
                format!(
                    "column {} is used as {wanted} here but as {known} elsewhere in the rule",
                    column.name
                ),
            ));
        }
        let column = &mut self.columns[index];
        column.kind = column.kind.or(kind);
        if !qualifier.is_empty() && !column.qualifiers.contains(&qualifier) {
            column.qualifiers.push(qualifier);
        }
        Ok(index)
    }
}

/// The literal text of a string literal expression.
fn string_literal(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Value(value) => match &value.value {
            Value::SingleQuotedString(s) | Value::NationalStringLiteral(s) => Some(s),
            _ => None,
        },
        Expr::Nested(inner) => string_literal(inner),
        _ => None,
    }
}
