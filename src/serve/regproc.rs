//! Comparisons of a `regproc` column of `pg_type` with `0`. In PostgreSQL those columns are
//! function oids, so the ADBC driver's start-up query asks `typreceive != 0` for "has a receive
//! function"; the catalogue `datafusion-postgres` provides holds them as the names PostgreSQL
//! displays, with `-` for oid 0, and DataFusion cannot compare `'boolrecv'` with `0`. The
//! comparison is rewritten to `typreceive != '-'`, which asks the same question.

use std::ops::ControlFlow;

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, Statement, Value, VisitMut, VisitorMut,
};
use datafusion_postgres::QueryHook;
use datafusion_postgres::arrow_pg::datatypes::df::encode_dataframe;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::api::portal::Format;
use datafusion_postgres::pgwire::api::results::Response;
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};

/// `pg_type`'s columns that hold a function (`regproc`).
const REGPROC_COLUMNS: [&str; 7] = [
    "typinput",
    "typoutput",
    "typreceive",
    "typsend",
    "typmodin",
    "typmodout",
    "typanalyze",
];

fn is_regproc_column(expr: &Expr) -> bool {
    let name = match expr {
        Expr::Identifier(ident) => ident,
        Expr::CompoundIdentifier(parts) => match parts.last() {
            Some(last) => last,
            None => return false,
        },
        _ => return false,
    };
    REGPROC_COLUMNS
        .iter()
        .any(|column| name.value.eq_ignore_ascii_case(column))
}

fn is_zero(expr: &Expr) -> bool {
    matches!(expr, Expr::Value(value) if matches!(&value.value, Value::Number(n, _) if n == "0"))
}

struct ZeroOidToDash {
    rewritten: bool,
}

impl VisitorMut for ZeroOidToDash {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::BinaryOp { left, op, right } = expr
            && matches!(op, BinaryOperator::Eq | BinaryOperator::NotEq)
        {
            let dash = || Expr::value(Value::SingleQuotedString("-".to_owned()));
            if is_regproc_column(left) && is_zero(right) {
                **right = dash();
                self.rewritten = true;
            } else if is_regproc_column(right) && is_zero(left) {
                **left = dash();
                self.rewritten = true;
            }
        }
        ControlFlow::Continue(())
    }
}

/// `statement` with its `regproc = 0` comparisons rewritten, if it has any.
fn rewrite(statement: &Statement) -> Option<Statement> {
    let mut rewritten = statement.clone();
    let mut visitor = ZeroOidToDash { rewritten: false };
    let _ = rewritten.visit(&mut visitor);
    visitor.rewritten.then_some(rewritten)
}

/// Runs statements with `regproc = 0` comparisons in their rewritten form.
#[derive(Debug)]
pub(super) struct RegprocZeroHook;

fn api(error: datafusion::error::DataFusionError) -> PgWireError {
    PgWireError::ApiError(Box::new(error))
}

#[async_trait]
impl QueryHook for RegprocZeroHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        let rewritten = rewrite(statement)?;
        let frame = match session_context.sql(&rewritten.to_string()).await {
            Ok(frame) => frame,
            Err(error) => return Some(Err(api(error))),
        };
        Some(
            encode_dataframe(frame, &Format::UnifiedText, None)
                .await
                .map(Response::Query),
        )
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        session_context: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        let rewritten = rewrite(statement)?;
        let plan = session_context
            .state()
            .statement_to_plan(DfStatement::Statement(Box::new(rewritten)))
            .await;
        Some(plan.map_err(api))
    }

    async fn handle_extended_query(
        &self,
        _statement: &Statement,
        _logical_plan: &LogicalPlan,
        _params: &ParamValues,
        _session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        // The plan made at parse time is the rewritten one; it runs as any other.
        None
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    fn rewritten(sql: &str) -> Option<String> {
        let statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .expect("parses")
            .remove(0);
        rewrite(&statement).map(|s| s.to_string())
    }

    #[test]
    fn adbc_s_type_query_compares_with_the_dash() {
        let sql = "SELECT oid, typname FROM pg_catalog.pg_type WHERE (typreceive != 0 OR \
                   0 <> t.typsend) AND typtype != 'r' AND typreceive::TEXT != 'array_recv'";
        let out = rewritten(sql).expect("rewritten");
        assert!(out.contains("typreceive <> '-'"), "{out}");
        assert!(out.contains("'-' <> t.typsend"), "{out}");
        assert!(out.contains("typtype <> 'r'"), "{out}");
    }

    #[test]
    fn other_comparisons_with_zero_are_left_alone() {
        assert_eq!(rewritten("SELECT * FROM t WHERE typlen != 0"), None);
        assert_eq!(rewritten("SELECT * FROM t WHERE typreceive > 0"), None);
    }
}
