//! What ebiq's query hooks share when they answer a statement themselves.

use std::sync::Arc;

use datafusion::arrow::datatypes::Schema;
use datafusion::common::DFSchema;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{EmptyRelation, LogicalPlan};
use datafusion::prelude::SessionContext;
use datafusion_postgres::arrow_pg::datatypes::df::encode_dataframe;
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
