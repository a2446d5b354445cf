//! The report's queries as views, `reports.<name>`, so that a Power BI model or an R script reads
//! the figures `ebiq report` writes. Each view plans its query when it is read, with the month
//! range of the reading connection (`SET reports.from_month = '2024-04'`) bound to the query's
//! `$from_month` and `$to_month`, exactly as `ebiq report --from --to` binds them.

use std::any::Any;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider, Session, TableProvider};
use datafusion::common::config::{ConfigEntry, ConfigExtension, ExtensionOptions};
use datafusion::common::{DataFusionError, config_err, plan_datafusion_err};
use datafusion::datasource::TableType;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_expr::projection::ProjectionExpr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::expressions::Column;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::prelude::SessionContext;

use crate::months::Month;
use crate::report::{Parameters, QueryFile, load_queries};

/// The schema holding the views.
pub const SCHEMA: &str = "reports";

/// The months a connection's report views cover: `reports.from_month` and `reports.to_month`
/// (`YYYY-MM` or `YYYYMM`; `''` for an open end, the default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportRange {
    /// The first month, if bounded.
    pub from: Option<Month>,
    /// The last month, if bounded.
    pub to: Option<Month>,
}

impl ConfigExtension for ReportRange {
    const PREFIX: &'static str = SCHEMA;
}

impl ExtensionOptions for ReportRange {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(*self)
    }

    fn set(&mut self, key: &str, value: &str) -> datafusion::common::Result<()> {
        let month = match value.trim() {
            "" => None,
            text => Some(
                text.parse::<Month>()
                    .map_err(DataFusionError::Configuration)?,
            ),
        };
        let mut next = *self;
        match key {
            "from_month" => next.from = month,
            "to_month" => next.to = month,
            _ => {
                return config_err!(
                    "no setting {SCHEMA}.{key}: the settings are {SCHEMA}.from_month and \
                     {SCHEMA}.to_month"
                );
            }
        }
        if let (Some(from), Some(to)) = (next.from, next.to)
            && from > to
        {
            return config_err!("{SCHEMA}.from_month {from} is after {SCHEMA}.to_month {to}");
        }
        *self = next;
        Ok(())
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        let entry = |name: &str, month: Option<Month>, description| ConfigEntry {
            key: format!("{SCHEMA}.{name}"),
            value: Some(month.map_or_else(String::new, |m| m.to_string())),
            description,
        };
        vec![
            entry(
                "from_month",
                self.from,
                "First activity month of the reports.* views (YYYY-MM; empty: no bound)",
            ),
            entry(
                "to_month",
                self.to,
                "Last activity month of the reports.* views (YYYY-MM; empty: no bound)",
            ),
        ]
    }
}

/// A view's name: its query file's name without the leading number (`01_flagged_by_provider_month`
/// is `reports.flagged_by_provider_month`).
pub fn view_name(query_name: &str) -> &str {
    let rest = query_name.trim_start_matches(|c: char| c.is_ascii_digit());
    match rest.strip_prefix('_') {
        Some(name) if rest.len() < query_name.len() && !name.is_empty() => name,
        _ => query_name,
    }
}

/// Adds the `reports.*` settings and one view per query in `queries` to `ctx`. A query that does
/// not plan over this dataset (one that `@requires` a table the dataset lacks) is not served; the
/// returned lines say which and why.
pub(super) async fn register(ctx: &SessionContext, queries: &Path) -> Result<Vec<String>> {
    ctx.state_ref()
        .write()
        .config_mut()
        .options_mut()
        .extensions
        .insert(ReportRange::default());
    let schema = Arc::new(MemorySchemaProvider::new());
    let mut skipped = Vec::new();
    for query in load_queries(queries)? {
        let name = view_name(&query.name).to_owned();
        if schema.table_exist(&name) {
            bail!(
                "{} and another query are both reports.{name}: rename one",
                query.path.display()
            );
        }
        match ReportView::plan(ctx, query).await {
            Ok(view) => {
                schema.register_table(name, Arc::new(view))?;
            }
            Err(error) => skipped.push(format!("reports.{name} is not served: {error:#}")),
        }
    }
    ctx.catalog(&ctx.state().config().options().catalog.default_catalog)
        .context("the session has no default catalog")?
        .register_schema(SCHEMA, schema)?;
    Ok(skipped)
}

/// One report query as a view.
#[derive(Debug)]
pub(super) struct ReportView {
    query: QueryFile,
    schema: SchemaRef,
}

impl ReportView {
    /// The view of `query`, whose columns are those its plan has over every month.
    async fn plan(ctx: &SessionContext, query: QueryFile) -> Result<Self> {
        let plan = bound_plan(&ctx.state(), &query, ReportRange::default())
            .await
            .with_context(|| format!("cannot plan {}", query.path.display()))?;
        let schema = Arc::new(plan.schema().as_arrow().clone());
        Ok(Self { query, schema })
    }
}

impl ReportView {
    /// The query's dimension columns, if it declares them (`-- @dimensions provider, month`).
    pub(super) fn dimensions(&self) -> Option<&[String]> {
        self.query.dimensions.as_deref()
    }

    /// The view's query planned for a read in `state`, with that session's month range.
    pub(super) async fn bound_plan(
        &self,
        state: &SessionState,
    ) -> datafusion::common::Result<LogicalPlan> {
        let range = state
            .config()
            .options()
            .extensions
            .get::<ReportRange>()
            .copied()
            .unwrap_or_default();
        bound_plan(state, &self.query, range).await
    }
}

/// `query` planned with `range` bound to its month parameters. Planned for each read, not once:
/// the reading connection's settings apply as they would to the same SQL typed by hand.
async fn bound_plan(
    state: &SessionState,
    query: &QueryFile,
    range: ReportRange,
) -> datafusion::common::Result<LogicalPlan> {
    let plan = state.create_logical_plan(&query.sql).await?;
    Parameters::new(range.from, range.to)
        .bind(plan)
        .map_err(|error| DataFusionError::External(error.into()))
}

#[async_trait]
impl TableProvider for ReportView {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn get_table_definition(&self) -> Option<&str> {
        Some(&self.query.sql)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        let state = state
            .as_any()
            .downcast_ref::<SessionState>()
            .ok_or_else(|| plan_datafusion_err!("a report view is read in a local session"))?;
        let plan = self.bound_plan(state).await?;
        let plan = state.create_physical_plan(&plan).await?;
        let Some(columns) = projection else {
            return Ok(plan);
        };
        let input = plan.schema();
        let exprs = columns.iter().map(|&index| ProjectionExpr {
            expr: Arc::new(Column::new(input.field(index).name(), index)),
            alias: input.field(index).name().clone(),
        });
        Ok(Arc::new(ProjectionExec::try_new(exprs, plan)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_names_drop_the_query_s_number() {
        assert_eq!(
            view_name("01_flagged_by_provider_month"),
            "flagged_by_provider_month"
        );
        assert_eq!(view_name("07_headline"), "headline");
        assert_eq!(view_name("headline"), "headline");
        assert_eq!(view_name("2024"), "2024");
        assert_eq!(view_name("12_"), "12_");
    }

    #[test]
    fn month_settings_parse_and_refuse_bad_values() {
        let mut range = ReportRange::default();
        range.set("from_month", "2024-04").expect("a month");
        range.set("to_month", "202503").expect("a month");
        assert_eq!(range.from, Month::new(2024, 4));
        assert_eq!(range.to, Month::new(2025, 3));
        assert!(
            range.set("to_month", "2023-01").is_err(),
            "before from_month"
        );
        assert_eq!(
            range.to,
            Month::new(2025, 3),
            "a refused value changes nothing"
        );
        assert!(range.set("from_month", "April").is_err());
        assert!(range.set("month", "2024-04").is_err());
        range.set("from_month", "").expect("an open end");
        assert_eq!(range.from, None);
    }
}
