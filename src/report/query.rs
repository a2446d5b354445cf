//! Report queries: reading the queries folder, binding parameters, planning and running one query.
//!
//! Queries take parameters as named placeholders (`$from_month`, `$to_month`), bound as values by
//! DataFusion, never pasted into the SQL text.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::metadata::ScalarAndMetadata;
use datafusion::common::{DataFusionError, ParamValues};
use datafusion::execution::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::{DataFrame, SessionContext};
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::parser::ParserError;
use ebiq_udfs::split_location;

use crate::months::Month;
use crate::plan::CteReferences;
use crate::plan::scanned::files_scanned;
use crate::plan::shared_ctes::{SharedResults, cte_names, run_shared_ctes_once};

/// One report query: a `.sql` file whose leading comment says what it answers.
#[derive(Debug, Clone)]
pub struct QueryFile {
    /// The file name without `.sql`: names the output.
    pub name: String,
    /// Where it was read from.
    pub path: PathBuf,
    /// The leading comment's first line.
    pub title: String,
    /// The file's text.
    pub sql: String,
    /// The dimension columns its `-- @dimensions a, b` header names, if it has one (see
    /// [`suppress`](super::suppress::suppress)).
    pub dimensions: Option<Vec<String>>,
    /// What its `-- @requires a, b.c` header names: optional tables of a dataset (`population`)
    /// or columns (`opa.sex`) without which the query is skipped rather than failed.
    pub requires: Vec<String>,
    /// Its `-- @chart KIND key=column ...` header, for the HTML report.
    pub chart: Option<String>,
}

/// The value of a `-- @name value` header line of a query.
fn header<'a>(sql: &'a str, name: &str) -> Option<&'a str> {
    sql.lines()
        .map(str::trim)
        .take_while(|line| line.starts_with("--") || line.is_empty())
        .filter_map(|line| line.strip_prefix("--"))
        .find_map(|line| line.trim().strip_prefix(name)?.strip_prefix(' '))
        .map(str::trim)
}

/// Reads every `*.sql` file in `dir`, in name order.
pub fn load_queries(dir: &Path) -> Result<Vec<QueryFile>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the queries folder {}", dir.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    paths.retain(|p| p.extension().is_some_and(|e| e == "sql"));
    paths.sort();
    if paths.is_empty() {
        bail!("the queries folder {} has no .sql files", dir.display());
    }
    paths
        .into_iter()
        .map(|path| {
            let sql = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("query")
                .to_owned();
            let title = sql
                .lines()
                .map(str::trim)
                .find_map(|line| line.strip_prefix("--"))
                .map(|t| t.trim().to_owned())
                .unwrap_or_else(|| name.clone());
            let list = |names: &str| -> Vec<String> {
                names
                    .split(',')
                    .map(|n| n.trim().to_owned())
                    .filter(|n| !n.is_empty())
                    .collect()
            };
            let dimensions = header(&sql, "@dimensions").map(list);
            let requires = header(&sql, "@requires").map(list).unwrap_or_default();
            let chart = header(&sql, "@chart").map(str::to_owned);
            Ok(QueryFile {
                name,
                path,
                title,
                sql,
                dimensions,
                requires,
                chart,
            })
        })
        .collect()
}

/// The values of the placeholders a report may use.
#[derive(Debug, Clone)]
pub struct Parameters {
    values: HashMap<&'static str, ScalarValue>,
    /// Whether `--from` or `--to` narrowed the months.
    bounded: bool,
}

impl Parameters {
    /// `$from_month` and `$to_month` as yyyymm text; an open end takes in every month.
    pub fn new(from: Option<Month>, to: Option<Month>) -> Self {
        let month = |m: Option<Month>, default: &str| {
            ScalarValue::Utf8(Some(m.map_or_else(|| default.to_owned(), |m| m.yyyymm())))
        };
        Self {
            values: HashMap::from([
                ("from_month", month(from, "000000")),
                ("to_month", month(to, "999999")),
            ]),
            bounded: from.is_some() || to.is_some(),
        }
    }

    /// Whether the month range leaves out any valid month.
    pub fn is_bounded(&self) -> bool {
        self.bounded
    }

    /// `plan` with the placeholders it uses bound to their values; an error names a placeholder
    /// ebiq does not provide.
    pub fn bind(&self, plan: LogicalPlan) -> Result<LogicalPlan> {
        let used = plan.get_parameter_types()?;
        if used.is_empty() {
            return Ok(plan);
        }
        let mut values = HashMap::new();
        for name in used.keys() {
            let Some(value) = self.values.get(name.trim_start_matches('$')) else {
                let mut known: Vec<_> = self.values.keys().map(|k| format!("${k}")).collect();
                known.sort();
                bail!(
                    "it uses the parameter {name}, which ebiq does not provide (it provides {})",
                    known.join(", ")
                );
            };
            values.insert(
                name.trim_start_matches('$').to_owned(),
                ScalarAndMetadata::from(value.clone()),
            );
        }
        Ok(plan.with_param_values(ParamValues::Map(values))?)
    }
}

/// A query's planning error; a syntax error as `file:line:column: message`, as compilers write it.
fn located(path: &Path, error: DataFusionError) -> anyhow::Error {
    if let DataFusionError::SQL(parser_error, _) = error.find_root() {
        let text = match parser_error.as_ref() {
            ParserError::ParserError(text) | ParserError::TokenizerError(text) => text.as_str(),
            ParserError::RecursionLimitExceeded => "statement nested too deeply",
        };
        if let Some((message, line, column)) = split_location(text) {
            return anyhow::anyhow!("{}:{line}:{column}: {message}", path.display());
        }
    }
    anyhow::Error::new(error).context(format!("query {}", path.display()))
}

/// A query's result, and the files it read.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// The result's schema (also when it has no rows).
    pub schema: SchemaRef,
    /// Its rows.
    pub batches: Vec<RecordBatch>,
    /// The files its scans read after partition pruning; `None` when the plan does not say (a
    /// cluster plans the scans itself).
    pub files_read: Option<BTreeSet<String>>,
    /// The CTEs it referred to more than once that ran once, with the rows each returned.
    pub ctes_run_once: Vec<(String, usize)>,
}

/// Plans and runs one query with its parameters bound.
pub async fn run_query(
    ctx: &SessionContext,
    query: &QueryFile,
    parameters: &Parameters,
) -> Result<QueryResult> {
    run_query_with(ctx, query, parameters, CteReferences::Inline, Ok).await
}

/// [`run_query`], with `rewrite` applied to each physical plan before it runs: those of the CTEs
/// that run once, in order, then the query's.
pub(super) async fn run_query_with(
    ctx: &SessionContext,
    query: &QueryFile,
    parameters: &Parameters,
    ctes: CteReferences,
    rewrite: impl FnMut(Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> + Send,
) -> Result<QueryResult> {
    let planned = plan_query(ctx, query, parameters).await?;
    run_planned(query, planned, ctes, rewrite).await
}

/// A query planned with its parameters bound, not yet run.
pub(super) struct Planned {
    pub(super) state: SessionState,
    /// The logical plan, as DataFusion planned it (not optimized).
    pub(super) plan: LogicalPlan,
    /// The names its `WITH` clauses give.
    ctes_named: BTreeSet<String>,
}

/// Plans `query` and binds its parameters.
pub(super) async fn plan_query(
    ctx: &SessionContext,
    query: &QueryFile,
    parameters: &Parameters,
) -> Result<Planned> {
    let (ctes_named, frame) = match plan_sql(ctx, &query.sql).await {
        Ok(planned) => planned,
        Err(error) => return Err(located(&query.path, error)),
    };
    let (state, logical) = frame.into_parts();
    let plan = parameters
        .bind(logical)
        .with_context(|| format!("query {}", query.path.display()))?;
    Ok(Planned {
        state,
        plan,
        ctes_named,
    })
}

/// Runs a planned query, with `rewrite` applied to each physical plan before it runs: those of
/// the CTEs that run once, in order, then the query's.
pub(super) async fn run_planned(
    query: &QueryFile,
    planned: Planned,
    ctes: CteReferences,
    mut rewrite: impl FnMut(Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> + Send,
) -> Result<QueryResult> {
    let at = || format!("query {}", query.path.display());
    let Planned {
        state,
        plan: logical,
        ctes_named,
    } = planned;
    let (logical, shared) = match ctes {
        CteReferences::Inline => (logical, SharedResults::default()),
        CteReferences::RunOnce => run_shared_ctes_once(&state, &ctes_named, logical, &mut rewrite)
            .await
            .with_context(at)?,
    };
    let frame = DataFrame::new(state, logical);
    let schema = frame.schema().inner().clone();
    let task = frame.task_ctx();
    let plan = rewrite(frame.create_physical_plan().await.with_context(at)?)?;
    let files_read = shared.files_read_with(files_scanned(&plan));
    let batches = collect(plan, Arc::new(task)).await.with_context(at)?;
    // The set-aside results are read until here.
    let ctes_run_once = shared.into_set_aside();
    Ok(QueryResult {
        schema,
        batches,
        files_read,
        ctes_run_once,
    })
}

/// `sql` parsed once and planned as [`SessionContext::sql`] plans it, with the names its `WITH`
/// clauses give.
async fn plan_sql(
    ctx: &SessionContext,
    sql: &str,
) -> datafusion::error::Result<(BTreeSet<String>, DataFrame)> {
    let state = ctx.state();
    let dialect = state.config().options().sql_parser.dialect;
    let statement = state.sql_to_statement(sql, &dialect)?;
    let names = cte_names(&statement);
    let plan = state.statement_to_plan(statement).await?;
    Ok((names, ctx.execute_logical_plan(plan).await?))
}

/// A query ebiq runs for itself (counts for the run summary), named like a file in errors.
pub(crate) fn internal_query(name: &str, sql: &str) -> QueryFile {
    QueryFile {
        name: name.into(),
        path: PathBuf::from(format!("(ebiq's {name} count)")),
        title: String::new(),
        sql: sql.into(),
        dimensions: None,
        requires: Vec::new(),
        chart: None,
    }
}
