//! `SET` and `SHOW` of a DataFusion or ebiq setting (`SET ebiq.null_mode = 'strict_tsql'`,
//! `SET reports.from_month = '2024-04'`) on the connection's own session, with DataFusion's error
//! when the name or value is wrong. PostgreSQL's own settings (`SET search_path`, `SET TIME ZONE`)
//! stay with `datafusion-postgres`.

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Set, Statement};
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::api::results::{Response, Tag};
use datafusion_postgres::pgwire::error::PgWireResult;

use super::respond::{PlanOf, api, no_rows_plan};

/// Runs `SET prefix.name = value` on the connection's session (with [`EbiqShow`] for `SHOW`).
#[derive(Debug)]
pub(super) struct EbiqSetHook;

/// Whether `statement` sets a namespaced (DataFusion or ebiq) setting.
fn is_namespaced_set(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::Set(Set::SingleAssignment { variable, .. }) if variable.0.len() > 1
    )
}

/// The prefixes of the settings `SHOW` reads from the session: DataFusion's, the rule functions'
/// and the report views'.
const SETTING_PREFIXES: [&str; 3] = ["datafusion", "ebiq", "reports"];

/// The name of the namespaced setting `statement` shows (`SHOW ebiq.null_mode`), if it is one.
/// sqlparser keeps the name's parts as separate identifiers.
fn namespaced_show(statement: &Statement) -> Option<String> {
    let Statement::ShowVariable { variable } = statement else {
        return None;
    };
    let parts: Vec<&str> = variable
        .iter()
        .flat_map(|ident| ident.value.split('.'))
        .filter(|part| !part.is_empty())
        .collect();
    // Only the prefixes of settings a session has: `SHOW transaction isolation level` comes in
    // parts too.
    let namespaced = parts.len() > 1
        && SETTING_PREFIXES
            .iter()
            .any(|prefix| parts[0].eq_ignore_ascii_case(prefix));
    namespaced.then(|| parts.join("."))
}

/// Plans `SHOW prefix.name`: the setting's name and value, as DataFusion shows them.
#[derive(Debug)]
pub(super) struct EbiqShow;

#[async_trait]
impl PlanOf for EbiqShow {
    async fn plan_of(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
    ) -> Option<datafusion::error::Result<LogicalPlan>> {
        let name = namespaced_show(statement)?;
        Some(
            ctx.state()
                .create_logical_plan(&format!("SHOW {name}"))
                .await,
        )
    }
}

async fn apply(statement: &Statement, ctx: &SessionContext) -> PgWireResult<Response> {
    let result = match ctx.sql(&statement.to_string()).await {
        Ok(frame) => frame.collect().await.map(|_| ()),
        Err(error) => Err(error),
    };
    result
        .map(|()| Response::Execution(Tag::new("SET")))
        .map_err(api)
}

#[async_trait]
impl QueryHook for EbiqSetHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if !is_namespaced_set(statement) {
            return None;
        }
        Some(apply(statement, session_context).await)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _session_context: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        // A SET returns no rows; it runs when executed, not when parsed.
        is_namespaced_set(statement).then(no_rows_plan)
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _logical_plan: &LogicalPlan,
        _params: &ParamValues,
        session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if !is_namespaced_set(statement) {
            return None;
        }
        Some(apply(statement, session_context).await)
    }
}
