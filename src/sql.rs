//! `ebiq sql`: one statement, or a file of them, over the same session as `report` and `shell`, for
//! scripts and schedulers. Results go to stdout (or `--out`), errors name the file and statement.

use std::collections::{BTreeSet, VecDeque};
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::ast::{Spanned, Statement as SqlStatement};

use crate::dataset::missing_column;
use crate::output::{OutputFormat, ResultsOut, write_batches, write_file};
use crate::plan::CteReferences;
use crate::plan::one_scan::{OPA, OneScan, run_in_one_scan};
use crate::plan::shared_ctes::{SharedResults, cte_names, run_shared_ctes_once};
use crate::plan::stems::{replace_stems, stems_of};
use crate::session::{self, SessionSettings};

/// Where the SQL comes from.
#[derive(Debug, Clone)]
pub enum SqlSource {
    /// SQL given on the command line.
    Text(String),
    /// A file of statements separated by `;`.
    File(PathBuf),
}

/// What to run and where its results go, already validated.
#[derive(Debug, Clone)]
pub struct SqlSettings {
    /// The statements.
    pub source: SqlSource,
    /// How results are written.
    pub format: OutputFormat,
    /// Write the last result here (atomically) instead of printing every result.
    pub out: Option<PathBuf>,
}

/// The whole command: opens the session over the dataset and runs the statements.
pub async fn run(session_settings: &SessionSettings, settings: &SqlSettings) -> Result<()> {
    let session = session::open(session_settings).await?;
    let mut stdout = ResultsOut::stdout();
    let ctes = CteReferences::for_session(session_settings.cluster.is_some());
    run_sql(&session.ctx, settings, ctes, &mut stdout)
        .await
        .map_err(|error| missing_column(&error, &session.inputs).unwrap_or(error))?;
    stdout.flush()?;
    Ok(())
}

/// Runs every statement in order; stops at the first error.
pub async fn run_sql(
    ctx: &SessionContext,
    settings: &SqlSettings,
    ctes: CteReferences,
    stdout: &mut (impl Write + Send),
) -> Result<()> {
    let (text, origin) = match &settings.source {
        SqlSource::Text(text) => (text.clone(), "the SQL".to_owned()),
        SqlSource::File(path) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?,
            path.display().to_string(),
        ),
    };
    let statements =
        DFParser::parse_sql(&text).with_context(|| format!("cannot parse {origin}"))?;
    if statements.is_empty() {
        bail!("{origin} has no SQL statement");
    }
    let count = statements.len();
    let mut one_scan = match ctes {
        CteReferences::RunOnce => OneScanOfOpa::prepare(ctx, &statements).await?,
        CteReferences::Inline => None,
    };
    let mut last = None;
    for (index, statement) in statements.into_iter().enumerate() {
        let place = match statement_line(&statement) {
            Some(line) => format!("{origin}, statement {} (line {line})", index + 1),
            None => format!("{origin}, statement {}", index + 1),
        };
        let ran = match one_scan.as_mut().and_then(|one| one.take(index)) {
            Some((names, plan)) => execute_plan(ctx, &ctx.state(), &names, plan, ctes).await,
            None => execute_statement(ctx, statement, ctes).await,
        };
        let (schema, batches) = ran.with_context(|| place.clone())?;
        if schema.fields().is_empty() {
            continue; // DDL or SET: nothing to show
        }
        if settings.out.is_some() {
            last = Some((schema, batches));
        } else {
            if settings.format == OutputFormat::Table && count > 1 {
                writeln!(stdout, "-- statement {}", index + 1)?;
            }
            write_batches(settings.format, &schema, &batches, stdout)?;
        }
    }
    if let Some(path) = &settings.out {
        let Some((schema, batches)) = last else {
            bail!("{origin} returns no rows to write to {}", path.display());
        };
        write_file(path, settings.format, &schema, &batches)?;
    }
    Ok(())
}

/// Plans and runs one parsed statement, collecting its result (empty for DDL and SET). With
/// [`CteReferences::RunOnce`], a query's CTE that reads a table and is referred to more than once
/// runs once, as in `ebiq report`.
pub async fn execute_statement(
    ctx: &SessionContext,
    statement: Statement,
    ctes: CteReferences,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let names = cte_names(&statement);
    let state = ctx.state();
    let plan = state.statement_to_plan(statement).await?;
    execute_plan(ctx, &state, &names, plan, ctes).await
}

/// Runs a statement's plan (its `WITH` clauses naming `names`), collecting its result.
async fn execute_plan(
    ctx: &SessionContext,
    state: &SessionState,
    names: &BTreeSet<String>,
    plan: LogicalPlan,
    ctes: CteReferences,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let (plan, shared) = if ctes == CteReferences::RunOnce && is_query(&plan) {
        run_shared_ctes_once(state, names, plan, &mut Ok).await?
    } else {
        (plan, SharedResults::default())
    };
    let frame = ctx.execute_logical_plan(plan).await?;
    let schema = frame.schema().inner().clone();
    let batches = frame.collect().await?;
    // The set-aside results are read until here.
    drop(shared);
    Ok((schema, batches))
}

/// The statements of one file whose reads of `opa` come from one scan of it, planned.
struct OneScanOfOpa {
    /// The stems' results, read until the statements have run.
    _results: OneScan,
    /// Each statement served by the scan, with its CTE names and its plan over the results;
    /// `None` for a statement that runs as it is (or has run).
    served: Vec<Option<(BTreeSet<String>, LogicalPlan)>>,
}

impl OneScanOfOpa {
    /// When every statement is a query (no DDL or SET, which later statements could depend on)
    /// and two or more of them read `opa` in [stems](crate::plan::stems): plans them all and runs
    /// their stems from one scan of `opa`. `None` otherwise, and when a statement does not plan
    /// (it then fails in its turn, named).
    async fn prepare(
        ctx: &SessionContext,
        statements: &VecDeque<Statement>,
    ) -> Result<Option<Self>> {
        if statements.len() < 2 || !statements.iter().all(is_query_statement) {
            return Ok(None);
        }
        let state = ctx.state();
        let mut planned = Vec::with_capacity(statements.len());
        let mut stems: Vec<LogicalPlan> = Vec::new();
        let mut reading = 0;
        for statement in statements {
            let names = cte_names(statement);
            let Ok(plan) = state.statement_to_plan(statement.clone()).await else {
                return Ok(None);
            };
            let of_plan = stems_of(&plan, OPA)?;
            if let Some(of_plan) = &of_plan {
                reading += 1;
                for stem in of_plan {
                    if !stems.contains(stem) {
                        stems.push(stem.clone());
                    }
                }
            }
            planned.push((names, plan, of_plan));
        }
        if reading < 2 {
            return Ok(None);
        }
        let results = run_in_one_scan(&state, OPA, &stems, &[], &mut Ok).await?;
        let mut served = Vec::with_capacity(planned.len());
        for (names, plan, of_plan) in planned {
            served.push(match of_plan.filter(|stems| results.serves(stems)) {
                Some(_) => Some((names, replace_stems(plan, &results.replacements)?)),
                None => None,
            });
        }
        Ok(Some(Self {
            _results: results,
            served,
        }))
    }

    /// Statement `index`'s names and plan, if the scan served it.
    fn take(&mut self, index: usize) -> Option<(BTreeSet<String>, LogicalPlan)> {
        self.served.get_mut(index)?.take()
    }
}

fn is_query_statement(statement: &Statement) -> bool {
    matches!(statement, Statement::Statement(inner) if matches!(inner.as_ref(), SqlStatement::Query(_)))
}

/// A plan that returns rows, as opposed to a command (DDL, SET, EXPLAIN, COPY, DML): only a query's
/// CTEs are run once, so that a view never holds a scan of a temporary folder.
fn is_query(plan: &LogicalPlan) -> bool {
    !matches!(
        plan,
        LogicalPlan::Ddl(_)
            | LogicalPlan::Dml(_)
            | LogicalPlan::Statement(_)
            | LogicalPlan::Explain(_)
            | LogicalPlan::Analyze(_)
            | LogicalPlan::Copy(_)
            | LogicalPlan::DescribeTable(_)
    )
}

fn statement_line(statement: &Statement) -> Option<u64> {
    match statement {
        Statement::Statement(inner) => Some(inner.span().start.line).filter(|&line| line > 0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use datafusion::arrow::array::{ArrayRef, Int32Array};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::MemTable;

    use super::*;
    use crate::plan::counting::counting_function;

    /// A session with `t(a)` holding 1 to 10 and `counted(a)`, which returns `a` and adds the rows
    /// it was called on to the counter.
    fn counting_session() -> (SessionContext, Arc<AtomicUsize>) {
        counting_session_of("t", "counted")
    }

    /// [`counting_session`] with the table and the function named.
    fn counting_session_of(table_name: &str, function: &str) -> (SessionContext, Arc<AtomicUsize>) {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int32, false)]));
        let column: ArrayRef = Arc::new(Int32Array::from_iter_values(1..=10));
        let batch = RecordBatch::try_new(Arc::clone(&schema), vec![column]).expect("a batch");
        let ctx = SessionContext::new();
        let table = MemTable::try_new(schema, vec![vec![batch]]).expect("a table");
        ctx.register_table(table_name, Arc::new(table))
            .expect("registered");
        let (function, calls) = counting_function(function);
        ctx.register_udf(function);
        (ctx, calls)
    }

    async fn run(ctx: &SessionContext, sql: &str, ctes: CteReferences) -> String {
        let mut statements = DFParser::parse_sql(sql).expect("parsed");
        let statement = statements.pop_front().expect("one statement");
        let (_, batches) = execute_statement(ctx, statement, ctes).await.expect("ran");
        datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .expect("printed")
            .to_string()
    }

    /// Both sides of the join need the CTE's `v`, so inline it is computed once per side.
    const TWICE: &str = "WITH big AS (SELECT counted(a) AS v FROM t WHERE a > 3) \
                         SELECT count(*) AS n, max(x.v) AS top FROM big x JOIN big y ON x.v = y.v";

    #[tokio::test]
    async fn a_cte_referred_to_twice_runs_once_with_the_same_answer() {
        let (ctx, calls) = counting_session();
        let once = run(&ctx, TWICE, CteReferences::RunOnce).await;
        assert_eq!(
            calls.swap(0, Ordering::Relaxed),
            7,
            "the CTE's 7 rows, once"
        );
        let inline = run(&ctx, TWICE, CteReferences::Inline).await;
        assert_eq!(calls.load(Ordering::Relaxed), 14, "once per reference");
        assert_eq!(once, inline);
        assert!(once.contains("| 7 | 10  |"), "{once}");
    }

    #[tokio::test]
    async fn a_view_keeps_its_cte_inline_and_outlives_the_statement_that_made_it() {
        let (ctx, _) = counting_session();
        let create = format!("CREATE VIEW summary AS {TWICE}");
        run(&ctx, &create, CteReferences::RunOnce).await;
        // Had the view captured a set-aside result, its folder would be gone by now.
        let read = run(&ctx, "SELECT * FROM summary", CteReferences::RunOnce).await;
        assert!(read.contains("| 7 | 10  |"), "{read}");
    }

    #[tokio::test]
    async fn the_queries_of_one_file_read_opa_once_with_the_same_answers() {
        let (ctx, calls) = counting_session_of("opa", "ebi_counted");
        let settings = SqlSettings {
            source: SqlSource::Text(
                "SELECT count(*) AS n FROM opa WHERE ebi_counted(a) > 3; \
                 SELECT max(a) AS top FROM opa WHERE ebi_counted(a) < 5;"
                    .into(),
            ),
            format: OutputFormat::Csv,
            out: None,
        };
        let mut once = Vec::new();
        run_sql(&ctx, &settings, CteReferences::RunOnce, &mut once)
            .await
            .expect("ran");
        assert_eq!(
            calls.swap(0, Ordering::Relaxed),
            10,
            "one scan, one call a row"
        );
        let mut each = Vec::new();
        run_sql(&ctx, &settings, CteReferences::Inline, &mut each)
            .await
            .expect("ran");
        assert_eq!(calls.load(Ordering::Relaxed), 20, "a scan per statement");
        assert_eq!(once, each);
        assert_eq!(String::from_utf8(once).expect("text"), "n\n7\ntop\n4\n");
    }
}
