//! Served statements on a Ballista cluster (`ebiq serve --cluster df://...`).
//!
//! Ballista sends a statement's logical plan to its scheduler, which can rebuild scans of the
//! dataset's files but not of tables that live only in this process: PostgreSQL's catalogue (what
//! clients read to connect and browse) and the `reports.*` views (planned for each read with the
//! reading connection's month range). So, before Ballista sees a plan, each report view it reads
//! is replaced by that view's query, bound as the view would bind it, and a plan that reads only
//! the catalogue (or no table) runs here, as Ballista itself runs one over `information_schema`.
//! A plan that joins the catalogue with the dataset is refused: neither side could run it.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNodeRecursion};
use datafusion::common::{Result, not_impl_err, plan_datafusion_err};
use datafusion::datasource::source_as_provider;
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder, TableScan};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};

use super::cancel::CancelOnRequest;
use super::reports::ReportView;

/// Plans on the cluster what reads the dataset, and here what reads only the catalogue.
#[derive(Debug)]
pub(super) struct ClusterOrLocal {
    /// Ballista's planner, which sends the plan to the scheduler.
    pub(super) remote: Arc<dyn QueryPlanner + Send + Sync>,
}

/// Whether a scan reads PostgreSQL's catalogue rather than the dataset.
fn is_catalogue(scan: &TableScan) -> bool {
    matches!(
        scan.table_name.schema(),
        Some("pg_catalog" | "information_schema")
    )
}

/// The report view a scan reads, if it reads one.
fn report_view(scan: &TableScan) -> Option<Arc<ReportView>> {
    let provider: Arc<dyn std::any::Any + Send + Sync> = source_as_provider(&scan.source).ok()?;
    provider.downcast::<ReportView>().ok()
}

/// Every table scan in `plan`, subqueries included.
fn scans(plan: &LogicalPlan) -> Result<Vec<TableScan>> {
    let mut found = Vec::new();
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            found.push(scan.clone());
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(found)
}

/// `plan` with each report view it reads replaced by the view's bound query, under the view's
/// name and with the columns the scan kept.
async fn with_views_inlined(plan: &LogicalPlan, state: &SessionState) -> Result<LogicalPlan> {
    let mut inlined = HashMap::new();
    for scan in scans(plan)? {
        if let Some(view) = report_view(&scan) {
            let query = view.bound_plan(state).await?;
            inlined.insert(scan.table_name.to_string(), query);
        }
    }
    if inlined.is_empty() {
        return Ok(plan.clone());
    }
    let rewritten = plan.clone().transform_up_with_subqueries(|node| {
        let LogicalPlan::TableScan(scan) = &node else {
            return Ok(Transformed::no(node));
        };
        let Some(query) = inlined.get(&scan.table_name.to_string()) else {
            return Ok(Transformed::no(node));
        };
        let mut builder = LogicalPlanBuilder::from(query.clone()).alias(scan.table_name.clone())?;
        if let Some(columns) = &scan.projection {
            let schema = builder.schema().clone();
            let kept = columns
                .iter()
                .map(|&i| datafusion::prelude::Expr::Column(schema.columns()[i].clone()));
            builder = builder.project(kept)?;
        }
        for filter in &scan.filters {
            builder = builder.filter(filter.clone())?;
        }
        Ok(Transformed::yes(builder.build()?))
    })?;
    state.optimize(&rewritten.data)
}

#[async_trait]
impl QueryPlanner for ClusterOrLocal {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let state = session
            .as_any()
            .downcast_ref::<SessionState>()
            .ok_or_else(|| {
                plan_datafusion_err!("a served statement is planned in a local session")
            })?;
        let plan = with_views_inlined(logical_plan, state).await?;
        let scanned = scans(&plan)?;
        let catalogue = scanned.iter().filter(|scan| is_catalogue(scan)).count();
        if catalogue == scanned.len() {
            return DefaultPhysicalPlanner::default()
                .create_physical_plan(&plan, state)
                .await;
        }
        if catalogue > 0 {
            return not_impl_err!(
                "on a cluster, a statement reads either the dataset or PostgreSQL's catalogue \
                 (pg_catalog, information_schema), not both"
            );
        }
        let mut remote = self.remote.create_physical_plan(&plan, session).await?;
        // Ballista's planner does not run the session's physical rules; the cancel wrapper is
        // the one a served statement needs, around the plan that waits for the cluster.
        for rule in state.physical_optimizers() {
            let rule_as_any: &dyn std::any::Any = rule.as_ref();
            if rule_as_any.is::<CancelOnRequest>() {
                remote = rule.optimize(remote, state.config_options())?;
            }
        }
        Ok(remote)
    }
}
