//! The `publisher` role, for dashboards and people outside the analytical team: it reads only the
//! `reports.*` views, and every value it receives has been through the small-number suppression
//! of `ebiq report --suppress` (1-7 as `*`, counts rounded to 5, secondary suppression within each
//! view). No patient-level row and no recoverable small count leaves the server for that role.
//!
//! A publisher's connection reads its own list of catalogs, [`Published`]: the database's
//! `reports` schema holds the suppressed views, PostgreSQL's catalogue describes those and nothing
//! else, and no other table is there to be named. Every table a publisher's statement names must
//! still be one of those, and `EXPLAIN`, whose row counts are not suppressed, is refused: both
//! checks are on the statement, before it is planned, so the refusal says what is not allowed.

use std::ops::ControlFlow;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
    MemorySchemaProvider, SchemaProvider, Session, TableProvider,
};
use datafusion::common::{DataFusionError, ParamValues, plan_datafusion_err};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    ObjectName, Query, Statement, Visit, Visitor, visit_relations,
};
use datafusion_postgres::QueryHook;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::setup_pg_catalog;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::api::results::Response;
use datafusion_postgres::pgwire::error::PgWireResult;

use super::errors::not_allowed;
use super::login::ROLE;
use super::reports::{ReportView, SCHEMA};
use super::users::Role;
use crate::report::suppress::suppress;

/// The catalogs a publisher's connection reads.
#[derive(Debug, Clone)]
pub(super) struct Published(Arc<dyn CatalogProviderList>);

/// A report view as a publisher reads it.
#[derive(Debug)]
struct SuppressedView {
    view: Arc<ReportView>,
    schema: SchemaRef,
    /// The catalogs, and the default catalog and schema, the view's query names its tables in
    /// (a publisher's session resolves names in [`Published`] instead).
    home: Home,
}

#[derive(Debug, Clone)]
struct Home {
    catalogs: Arc<dyn CatalogProviderList>,
    catalog: String,
    schema: String,
}

#[async_trait]
impl TableProvider for SuppressedView {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
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
        // Secondary suppression looks at the whole view, so the whole view is computed first
        // (a report view is an aggregate: small).
        let mut home = state.clone();
        home.register_catalog_list(self.home.catalogs.clone());
        let options = home.config_mut().options_mut();
        options
            .catalog
            .default_catalog
            .clone_from(&self.home.catalog);
        options.catalog.default_schema.clone_from(&self.home.schema);
        let plan = self.view.bound_plan(&home).await?;
        let physical = home.create_physical_plan(&plan).await?;
        let batches = collect(physical, home.task_ctx()).await?;
        let (schema, batch) = suppress(&self.view.schema(), &batches, self.view.dimensions())
            .map_err(|error| DataFusionError::External(error.into()))?;
        let exec = MemorySourceConfig::try_new_exec(&[vec![batch]], schema, projection.cloned())?;
        Ok(exec)
    }
}

/// The catalogs a publisher reads: `ctx`'s database `served` with only its report views, each
/// suppressed, and a PostgreSQL catalogue of its own that describes them.
pub(super) async fn published(ctx: &SessionContext, served: &str) -> Result<Published> {
    let catalog = ctx
        .catalog(served)
        .with_context(|| format!("no catalog {served}"))?;
    let reports = catalog
        .schema(SCHEMA)
        .with_context(|| format!("no schema {SCHEMA}"))?;
    let state = ctx.state();
    let home = Home {
        catalogs: state.catalog_list().clone(),
        catalog: served.to_owned(),
        schema: state.config().options().catalog.default_schema.clone(),
    };
    let published_reports = Arc::new(MemorySchemaProvider::new());
    for name in reports.table_names() {
        let Some(table) = reports.table(&name).await? else {
            continue;
        };
        let table: Arc<dyn std::any::Any + Send + Sync> = table;
        let Ok(view) = table.downcast::<ReportView>() else {
            continue;
        };
        let (schema, _) = suppress(&view.schema(), &[], view.dimensions())
            .with_context(|| format!("cannot suppress {SCHEMA}.{name}"))?;
        published_reports.register_table(
            name,
            Arc::new(SuppressedView {
                view,
                schema,
                home: home.clone(),
            }),
        )?;
    }
    let database = MemoryCatalogProvider::new();
    database.register_schema(SCHEMA, published_reports)?;
    let catalogs = Arc::new(MemoryCatalogProviderList::new());
    catalogs.register_catalog(served.to_owned(), Arc::new(database));
    // PostgreSQL's catalogue over these catalogs only, so that a dashboard's table list shows
    // the views with the types a publisher receives.
    let described = SessionContext::new_with_state(
        SessionStateBuilder::new_from_existing(state)
            .with_catalog_list(catalogs.clone())
            .build(),
    );
    setup_pg_catalog(&described, served, EmptyContextProvider)
        .map_err(|error| anyhow!("cannot set up the publisher's PostgreSQL catalogue: {error}"))?;
    Ok(Published(catalogs))
}

/// Why a publisher may not run `statement`, if it may not.
fn refusal(statement: &Statement) -> Option<String> {
    if matches!(
        statement,
        Statement::Explain { .. } | Statement::ExplainTable { .. }
    ) {
        return Some(
            "EXPLAIN is not allowed for the publisher role: its row counts are not suppressed"
                .to_owned(),
        );
    }
    let ctes = cte_names(statement);
    let mut refused = None;
    let _ = visit_relations(statement, |name: &ObjectName| {
        if !readable(name, &ctes) {
            refused = Some(format!(
                "the publisher role reads only the {SCHEMA}.* views, not {name}"
            ));
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    refused
}

/// The names a statement's `WITH` clauses give (they are not tables).
struct CteNames(Vec<String>);

impl Visitor for CteNames {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            self.0.extend(
                with.cte_tables
                    .iter()
                    .map(|cte| cte.alias.name.value.to_ascii_lowercase()),
            );
        }
        ControlFlow::Continue(())
    }
}

fn cte_names(statement: &Statement) -> Vec<String> {
    let mut names = CteNames(Vec::new());
    let _ = statement.visit(&mut names);
    names.0
}

/// Whether a publisher may read the table `name`: a report view, the catalogue, or a `WITH` name
/// (in [`Published`], where no other catalog is).
fn readable(name: &ObjectName, ctes: &[String]) -> bool {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|part| {
            part.as_ident()
                .map_or_else(|| part.to_string(), |ident| ident.value.clone())
                .to_ascii_lowercase()
        })
        .collect();
    let catalogue = |schema: &str| schema == "pg_catalog" || schema == "information_schema";
    match parts.as_slice() {
        [table] => ctes.contains(table) || table.starts_with("pg_"),
        [schema, _] => schema == SCHEMA || catalogue(schema),
        [_, schema, _] => schema == SCHEMA || catalogue(schema),
        _ => false,
    }
}

fn is_publisher(client: &(dyn ClientInfo + Send + Sync)) -> bool {
    client.metadata().get(ROLE).map(String::as_str) == Some(Role::Publisher.as_str())
}

/// The publisher role's rules, for connections that logged in with it.
#[derive(Debug)]
pub(super) struct PublisherOnly(pub(super) Published);

impl PublisherOnly {
    /// Points a publisher's connection at [`Published`] (once), then applies [`refusal`].
    fn check(&self, statement: &Statement, ctx: &SessionContext) -> Option<String> {
        {
            let state = ctx.state_ref();
            let mut state = state.write();
            if !Arc::ptr_eq(state.catalog_list(), &self.0.0) {
                state.register_catalog_list(self.0.0.clone());
                state.config_mut().options_mut().catalog.default_schema = SCHEMA.to_owned();
            }
        }
        refusal(statement)
    }
}

#[async_trait]
impl QueryHook for PublisherOnly {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        session_context: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if !is_publisher(client) {
            return None;
        }
        self.check(statement, session_context)
            .map(|message| Err(not_allowed(message)))
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        session_context: &SessionContext,
        client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        if !is_publisher(client) {
            return None;
        }
        self.check(statement, session_context)
            .map(|message| Err(not_allowed(message)))
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _logical_plan: &LogicalPlan,
        _params: &ParamValues,
        session_context: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if !is_publisher(client) {
            return None;
        }
        self.check(statement, session_context)
            .map(|message| Err(not_allowed(message)))
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
    fn a_publisher_reads_report_views_and_the_catalogue_only() {
        for sql in [
            "SELECT * FROM reports.flagged_by_provider_month WHERE provider = 'RA0'",
            "SELECT * FROM ebiq.reports.headline",
            "WITH h AS (SELECT * FROM reports.headline) SELECT * FROM h",
            "SELECT relname FROM pg_catalog.pg_class",
            "SELECT typname FROM pg_type",
            "SET reports.from_month = '2024-04'",
        ] {
            assert_eq!(refused(sql), None, "{sql}");
        }
        for sql in [
            "SELECT * FROM opa",
            "SELECT * FROM public.opa",
            "SELECT * FROM ebiq.public.opa",
            "SELECT * FROM reports.headline h JOIN apcs a ON true",
            "SELECT (SELECT count(*) FROM opa) FROM reports.headline",
            "EXPLAIN SELECT * FROM reports.headline",
        ] {
            assert!(refused(sql).is_some(), "{sql}");
        }
    }
}
