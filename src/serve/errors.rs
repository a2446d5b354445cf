//! DataFusion's errors as PostgreSQL reports them: a SQLSTATE code a client can act on (psycopg
//! raises `UndefinedTable` for `42P01`, JDBC's `getSQLState()` returns it) and ebiq's message.

use datafusion::arrow::error::ArrowError;
use datafusion::common::SchemaError;
use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::parser::ParserError;
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError};

use super::cancel::Cancelled;
use crate::dataset::missing_sus_column;
use crate::dataset::validate::InputFile;

/// PostgreSQL's codes for the errors ebiq's statements meet
/// (<https://www.postgresql.org/docs/current/errcodes-appendix.html>).
pub(super) mod sqlstate {
    /// A statement that does not parse.
    pub const SYNTAX_ERROR: &str = "42601";
    /// A table or view that does not exist.
    pub const UNDEFINED_TABLE: &str = "42P01";
    /// A column that does not exist.
    pub const UNDEFINED_COLUMN: &str = "42703";
    /// A function that does not exist, or not for these argument types.
    pub const UNDEFINED_FUNCTION: &str = "42883";
    /// A setting that does not exist.
    pub const UNDEFINED_OBJECT: &str = "42704";
    /// A statement the server does not allow (writing, reading files).
    pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
    /// Any other error in what the statement asks.
    pub const SYNTAX_OR_ACCESS_RULE: &str = "42000";
    /// A setting given a value it does not take.
    pub const INVALID_PARAMETER_VALUE: &str = "22023";
    /// A value that cannot be converted to the type asked for.
    pub const INVALID_TEXT_REPRESENTATION: &str = "22P02";
    /// Division by zero.
    pub const DIVISION_BY_ZERO: &str = "22012";
    /// The memory limit reached.
    pub const OUT_OF_MEMORY: &str = "53200";
    /// Something PostgreSQL has that ebiq does not.
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
    /// A failure reading the dataset.
    pub const IO_ERROR: &str = "58030";
    /// A statement its client cancelled.
    pub const QUERY_CANCELED: &str = "57014";
    /// Anything else.
    pub const INTERNAL_ERROR: &str = "XX000";
}

/// The error a client receives for `error`, if it is one ebiq gives a code: DataFusion's, or
/// sqlparser's (the simple protocol parses before DataFusion sees the statement).
/// A refusal of what the server does not allow (SQLSTATE 42501), with `message` saying what.
pub(super) fn not_allowed(message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_owned(),
        sqlstate::INSUFFICIENT_PRIVILEGE.to_owned(),
        message,
    )))
}

pub(super) fn error_info(
    error: &(dyn std::error::Error + Send + Sync + 'static),
    inputs: &[InputFile],
) -> Option<ErrorInfo> {
    if let Some(datafusion) = error.downcast_ref::<DataFusionError>() {
        Some(datafusion_error_info(datafusion, inputs))
    } else {
        error.downcast_ref::<ParserError>().map(|parser| {
            ErrorInfo::new(
                "ERROR".to_owned(),
                sqlstate::SYNTAX_ERROR.to_owned(),
                parser.to_string(),
            )
        })
    }
}

/// The error a client receives for DataFusion's `error`.
fn datafusion_error_info(error: &DataFusionError, inputs: &[InputFile]) -> ErrorInfo {
    let code = sqlstate_of(error);
    let message = match error.find_root() {
        // A SUS column the files lack: the message `ebiq sql` gives, naming a file that lacks it.
        DataFusionError::SchemaError(inner, _) => match inner.as_ref() {
            SchemaError::FieldNotFound { field, .. } => {
                missing_sus_column("the statement", field.name(), inputs)
            }
            _ => None,
        },
        _ => None,
    };
    let message = message.unwrap_or_else(|| root_text(error));
    ErrorInfo::new("ERROR".to_owned(), code.to_owned(), message)
}

/// The innermost error's text: DataFusion's outer errors repeat it with their own prefixes.
fn root_text(error: &DataFusionError) -> String {
    error.find_root().to_string()
}

/// The SQLSTATE code PostgreSQL would give `error`.
pub(super) fn sqlstate_of(error: &DataFusionError) -> &'static str {
    match error.find_root() {
        DataFusionError::SQL(parser_error, _) => match parser_error.as_ref() {
            ParserError::RecursionLimitExceeded => sqlstate::SYNTAX_OR_ACCESS_RULE,
            _ => sqlstate::SYNTAX_ERROR,
        },
        DataFusionError::SchemaError(inner, _) => match inner.as_ref() {
            SchemaError::FieldNotFound { .. } => sqlstate::UNDEFINED_COLUMN,
            _ => sqlstate::SYNTAX_OR_ACCESS_RULE,
        },
        DataFusionError::Plan(message) => plan_sqlstate(message),
        DataFusionError::Configuration(message) => {
            if message.contains("not found") || message.starts_with("no setting") {
                sqlstate::UNDEFINED_OBJECT
            } else {
                sqlstate::INVALID_PARAMETER_VALUE
            }
        }
        DataFusionError::ResourcesExhausted(_) => sqlstate::OUT_OF_MEMORY,
        DataFusionError::External(inner) if inner.is::<Cancelled>() => sqlstate::QUERY_CANCELED,
        DataFusionError::NotImplemented(_) => sqlstate::FEATURE_NOT_SUPPORTED,
        DataFusionError::IoError(_) | DataFusionError::ObjectStore(_) => sqlstate::IO_ERROR,
        DataFusionError::ArrowError(arrow, _) => match arrow.as_ref() {
            ArrowError::DivideByZero => sqlstate::DIVISION_BY_ZERO,
            ArrowError::CastError(_) | ArrowError::ParseError(_) => {
                sqlstate::INVALID_TEXT_REPRESENTATION
            }
            ArrowError::IoError(..) => sqlstate::IO_ERROR,
            _ => sqlstate::INTERNAL_ERROR,
        },
        _ => sqlstate::INTERNAL_ERROR,
    }
}

/// DataFusion's planning errors are all `Plan`; which one it is, its message says.
fn plan_sqlstate(message: &str) -> &'static str {
    let lower = message.to_ascii_lowercase();
    if lower.starts_with("table '") && lower.contains("not found") {
        sqlstate::UNDEFINED_TABLE
    } else if lower.starts_with("invalid function")
        || lower.contains("no function matches")
        || lower.contains("failed to coerce arguments")
    {
        sqlstate::UNDEFINED_FUNCTION
    } else {
        sqlstate::SYNTAX_OR_ACCESS_RULE
    }
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;

    use super::*;

    /// The error DataFusion gives for `sql` over a table `opa(der_provider_code)`.
    async fn planning_error(sql: &str) -> DataFusionError {
        let ctx = SessionContext::new();
        ctx.sql("CREATE TABLE opa AS SELECT 'RXH' AS der_provider_code")
            .await
            .expect("create")
            .collect()
            .await
            .expect("created");
        match ctx.sql(sql).await {
            Ok(frame) => frame.collect().await.expect_err("an error"),
            Err(error) => error,
        }
    }

    #[tokio::test]
    async fn each_kind_of_planning_error_has_postgres_code() {
        let cases = [
            ("SELEC 1", sqlstate::SYNTAX_ERROR),
            ("SELECT * FROM opa_typo", sqlstate::UNDEFINED_TABLE),
            ("SELECT no_such_column FROM opa", sqlstate::UNDEFINED_COLUMN),
            ("SELECT no_such_function(1)", sqlstate::UNDEFINED_FUNCTION),
            (
                "SELECT CAST('x' AS INT)",
                sqlstate::INVALID_TEXT_REPRESENTATION,
            ),
            (
                "SET datafusion.no_such_option = 1",
                sqlstate::UNDEFINED_OBJECT,
            ),
        ];
        for (sql, expected) in cases {
            let error = planning_error(sql).await;
            assert_eq!(sqlstate_of(&error), expected, "{sql}: {error}");
        }
    }

    #[tokio::test]
    async fn a_missing_sus_column_is_named_with_its_meaning() {
        let error = planning_error("SELECT der_activity_month FROM opa").await;
        let info = datafusion_error_info(&error, &[]);
        assert_eq!(info.code, sqlstate::UNDEFINED_COLUMN);
        assert!(
            info.message.contains("Der_Activity_Month (activity month"),
            "{}",
            info.message
        );
        assert!(
            info.message
                .contains("which the dataset's files do not have"),
            "{}",
            info.message
        );
    }

    #[tokio::test]
    async fn a_column_outside_sus_keeps_datafusion_s_message() {
        let error = planning_error("SELECT no_such_column FROM opa").await;
        let info = datafusion_error_info(&error, &[]);
        assert!(info.message.contains("no_such_column"), "{}", info.message);
        assert!(
            !info.message.contains("dataset's files"),
            "{}",
            info.message
        );
    }
}
