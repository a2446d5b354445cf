//! The dataset's tables shown to clients as tables. ebiq registers `opa`, `apcs`, `population` and
//! `esp2013` as views (over the Parquet files, with lower-case column names), so PostgreSQL's
//! catalogue would list them as views: psql's `\dt`, DBeaver's table list and
//! `DatabaseMetaData.getTables(..., {"TABLE"})` would show nothing.

use std::borrow::Cow;
use std::sync::Arc;

use anyhow::{Context, Result};
use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{Constraints, Statistics};
use datafusion::datasource::TableType;
use datafusion::logical_expr::{Expr, LogicalPlan, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;

/// Re-registers every table of the session's default schema as a base table, with the same rows.
pub(super) async fn present_as_tables(ctx: &SessionContext) -> Result<()> {
    let options = ctx.state().config().options().catalog.clone();
    let schema = ctx
        .catalog(&options.default_catalog)
        .and_then(|catalog| catalog.schema(&options.default_schema))
        .context("the session has no default schema")?;
    for name in schema.table_names() {
        let Some(inner) = schema.table(&name).await? else {
            continue;
        };
        if inner.table_type() == TableType::View {
            schema.deregister_table(&name)?;
            schema.register_table(name, Arc::new(DatasetTable(inner)))?;
        }
    }
    Ok(())
}

/// A dataset table: reads as the view it wraps, and is catalogued as a table.
#[derive(Debug)]
struct DatasetTable(Arc<dyn TableProvider>);

#[async_trait]
impl TableProvider for DatasetTable {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }

    fn constraints(&self) -> Option<&Constraints> {
        self.0.constraints()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn get_logical_plan(&'_ self) -> Option<Cow<'_, LogicalPlan>> {
        self.0.get_logical_plan()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        self.0.scan(state, projection, filters, limit).await
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::common::Result<Vec<TableProviderFilterPushDown>> {
        self.0.supports_filters_pushdown(filters)
    }

    fn statistics(&self) -> Option<Statistics> {
        self.0.statistics()
    }
}
