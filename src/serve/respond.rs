//! What ebiq's query hooks share when they answer a statement themselves.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::Schema;
use datafusion::common::{DFSchema, ParamValues};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{EmptyRelation, LogicalPlan};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::QueryHook;
use datafusion_postgres::arrow_pg::datatypes::df::encode_dataframe;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::api::portal::Format;
use datafusion_postgres::pgwire::api::results::Response;
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};

/// A DataFusion error as the connection's error handler expects it (it gives it a SQLSTATE).
pub(super) fn api(error: DataFusionError) -> PgWireError {
    PgWireError::ApiError(Box::new(error))
}

/// Runs `plan` and streams its rows to the client as text.
pub(super) async fn rows_of(plan: LogicalPlan, ctx: &SessionContext) -> PgWireResult<Response> {
    let frame = ctx.execute_logical_plan(plan).await.map_err(api)?;
    encode_dataframe(frame, &Format::UnifiedText, None)
        .await
        .map(Response::Query)
}

/// The plan the extended protocol's parse step is given for a statement a hook runs itself when it
/// is executed: no columns, no rows.
pub(super) fn no_rows_plan() -> PgWireResult<LogicalPlan> {
    let schema = DFSchema::try_from(Schema::empty()).map_err(api)?;
    Ok(LogicalPlan::EmptyRelation(EmptyRelation {
        produce_one_row: false,
        schema: Arc::new(schema),
    }))
}

/// A hook that answers some statements with a plan of its own (a catalogue query rewritten, a
/// query whose structs become JSON, `SHOW` of a setting); the plan then runs as any other.
#[async_trait]
pub(super) trait PlanOf: Send + Sync {
    /// The plan to run for `statement`, or `None` to leave it to the next hook.
    async fn plan_of(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
    ) -> Option<datafusion::error::Result<LogicalPlan>>;
}

/// A [`PlanOf`] as a `datafusion-postgres` hook: the simple protocol runs the plan at once; the
/// extended protocol is given it when the statement is parsed, and binds and runs it as usual.
#[derive(Debug)]
pub(super) struct Planned<T>(pub(super) T);

#[async_trait]
impl<T: PlanOf> QueryHook for Planned<T> {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        Some(match self.0.plan_of(statement, session_context).await? {
            Ok(plan) => rows_of(plan, session_context).await,
            Err(error) => Err(api(error)),
        })
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        session_context: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        Some(
            self.0
                .plan_of(statement, session_context)
                .await?
                .map_err(api),
        )
    }

    async fn handle_extended_query(
        &self,
        _statement: &Statement,
        _logical_plan: &LogicalPlan,
        _params: &ParamValues,
        _session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        // The plan given at parse time is already this hook's.
        None
    }
}
