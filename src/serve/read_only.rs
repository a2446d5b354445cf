//! What `ebiq serve` refuses: anything that writes (to the catalogue shared by every connection
//! or to a file), reads a file the server was not started on, or changes how DataFusion reads
//! files. Each refusal is SQLSTATE 42501 and says what is not allowed. Checked before any other
//! hook and before planning, in both protocols: a client cannot plan its way past it.

use std::ops::ControlFlow;

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{CopyTarget, Set, Statement, TableFactor, Visit, Visitor};
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::api::results::Response;
use datafusion_postgres::pgwire::error::PgWireResult;

use super::errors::not_allowed;

/// Table functions that make rows rather than read them.
const GENERATING_TABLE_FUNCTIONS: [&str; 2] = ["generate_series", "range"];

/// Finds, in a statement's tables, a file named by its path or a table function that could read
/// one.
struct FileReads(Option<String>);

impl Visitor for FileReads {
    type Break = ();

    fn pre_visit_table_factor(&mut self, table: &TableFactor) -> ControlFlow<()> {
        let TableFactor::Table { name, args, .. } = table else {
            return ControlFlow::Continue(());
        };
        let last = name.0.last().and_then(|part| part.as_ident());
        let by_path = last.is_some_and(|ident| {
            ident.quote_style == Some('\'')
                || ident.value.contains('/')
                || ident.value.contains('\\')
        });
        if by_path {
            self.0 = Some(format!("reading the file {name} by its path"));
            return ControlFlow::Break(());
        }
        let function = name.to_string().to_ascii_lowercase();
        if args.is_some() && !GENERATING_TABLE_FUNCTIONS.contains(&function.as_str()) {
            self.0 = Some(format!("the table function {function}"));
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

/// What `statement` does that is not allowed, if anything.
fn refusal(statement: &Statement) -> Option<String> {
    let allowed = match statement {
        Statement::Query(_)
        | Statement::ExplainTable { .. }
        | Statement::ShowVariable { .. }
        | Statement::ShowVariables { .. }
        | Statement::ShowTables { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowFunctions { .. }
        | Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. }
        | Statement::Declare { .. }
        | Statement::Fetch { .. }
        | Statement::Close { .. }
        | Statement::Deallocate { .. }
        | Statement::Discard { .. } => true,
        Statement::Explain { statement, .. } | Statement::Prepare { statement, .. } => {
            return refusal(statement);
        }
        // `COPY ... TO STDOUT` sends rows to the client; the COPY hook refuses the rest.
        Statement::Copy {
            to: true,
            target: CopyTarget::Stdout,
            ..
        } => true,
        Statement::Set(Set::SingleAssignment { variable, .. }) => {
            let first = variable
                .0
                .first()
                .map(|part| part.to_string().to_ascii_lowercase());
            if first.as_deref() == Some("datafusion") {
                return Some(format!(
                    "SET {variable}: DataFusion's settings decide which files are read and how, \
                     and are the server's; ebiq.* and reports.* settings may be set"
                ));
            }
            true
        }
        Statement::Set(_) => true,
        _ => false,
    };
    if !allowed {
        // The statement's leading keywords (sqlparser prints keywords in capitals, names as
        // written): `DROP TABLE`, `CREATE EXTERNAL TABLE`.
        let text = statement.to_string();
        let words: Vec<&str> = text
            .split_whitespace()
            .take(3)
            .take_while(|word| word.chars().all(|c| c.is_ascii_uppercase()))
            .collect();
        return Some(format!(
            "{} changes or writes something, and ebiq serve is read-only",
            words.join(" ")
        ));
    }
    let mut reads = FileReads(None);
    let _ = statement.visit(&mut reads);
    reads
        .0
        .map(|what| format!("{what} is not allowed: ebiq serve reads only its dataset"))
}

/// Refuses, before anything else sees it, what [`refusal`] finds.
#[derive(Debug)]
pub(super) struct ReadOnly;

#[async_trait]
impl QueryHook for ReadOnly {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        refusal(statement).map(|message| Err(not_allowed(message)))
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _session_context: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        refusal(statement).map(|message| Err(not_allowed(message)))
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _logical_plan: &LogicalPlan,
        _params: &ParamValues,
        _session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        refusal(statement).map(|message| Err(not_allowed(message)))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    fn refused(sql: &str) -> Option<String> {
        let statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .expect("parses")
            .remove(0);
        refusal(&statement)
    }

    #[test]
    fn reads_pass_and_each_kind_of_write_or_file_read_is_named() {
        for sql in [
            "SELECT * FROM opa",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "EXPLAIN ANALYZE SELECT count(*) FROM opa",
            "SHOW ebiq.null_mode",
            "SET ebiq.null_mode = 'strict_tsql'",
            "SET search_path = public",
            "BEGIN",
            "COPY (SELECT 1) TO STDOUT",
            "SELECT * FROM generate_series(1, 3)",
        ] {
            assert_eq!(refused(sql), None, "{sql}");
        }
        let cases = [
            ("INSERT INTO opa VALUES (1)", "INSERT INTO changes"),
            ("CREATE TABLE t AS SELECT 1", "CREATE TABLE changes"),
            ("CREATE VIEW v AS SELECT 1", "CREATE VIEW changes"),
            ("DROP TABLE opa", "DROP TABLE changes"),
            ("DELETE FROM opa", "DELETE FROM changes"),
            ("EXPLAIN CREATE TABLE t AS SELECT 1", "CREATE TABLE changes"),
            (
                "SET datafusion.execution.listing_table_ignore_subdirectory = false",
                "DataFusion's settings decide which files are read",
            ),
            (
                "SELECT * FROM '/data/other.parquet'",
                "reading the file '/data/other.parquet' by its path is not allowed",
            ),
            (
                "SELECT * FROM opa JOIN parquet_metadata('x.parquet') ON true",
                "the table function parquet_metadata is not allowed",
            ),
        ];
        for (sql, message) in cases {
            let refusal = refused(sql).unwrap_or_else(|| panic!("{sql} is allowed"));
            assert!(refusal.contains(message), "{sql}: {refusal}");
        }
    }
}
