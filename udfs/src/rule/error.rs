//! What goes wrong reading a rule file, and where.

use std::fmt;

/// A rule file that cannot be read as a rule, with where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleFileError {
    /// The file, as given to the parser.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, when the error has one.
    pub column: Option<usize>,
    /// What was wrong or expected.
    pub message: String,
}

impl fmt::Display for RuleFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.column {
            Some(column) => write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, column, self.message
            ),
            None => write!(f, "{}:{}: {}", self.file, self.line, self.message),
        }
    }
}

impl std::error::Error for RuleFileError {}

/// Splits a sqlparser error text, "message at Line: L, Column: C", into its message, line and
/// column; `None` for a text without a place (an error at the end of the input).
pub fn split_location(text: &str) -> Option<(&str, usize, usize)> {
    let (message, place) = text.rsplit_once(" at Line: ")?;
    let (line, column) = place.split_once(", Column: ")?;
    Some((
        message,
        line.trim().parse().ok()?,
        column.trim().parse().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::split_location;

    #[test]
    fn sqlparser_places_are_split_off() {
        assert_eq!(
            split_location("Expected: THEN, found: END at Line: 7, Column: 1"),
            Some(("Expected: THEN, found: END", 7, 1))
        );
        assert_eq!(split_location("no place"), None);
        assert_eq!(split_location("x at Line: seven, Column: 1"), None);
    }
}
