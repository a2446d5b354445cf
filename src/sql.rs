//! `ebiq sql`: one statement, or a file of them, over the same session as `report` and `shell`, for
//! scripts and schedulers. Results go to stdout (or `--out`), errors name the file and statement.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::ast::Spanned;

use crate::dataset::missing_column;
use crate::output::{OutputFormat, ResultsOut, write_batches, write_file};
use crate::plan::CteReferences;
use crate::plan::shared_ctes::{SharedResults, run_shared_ctes_once};
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
    let mut last = None;
    for (index, statement) in statements.into_iter().enumerate() {
        let place = match statement_line(&statement) {
            Some(line) => format!("{origin}, statement {} (line {line})", index + 1),
            None => format!("{origin}, statement {}", index + 1),
        };
        let (schema, batches) = execute_statement(ctx, statement, ctes)
            .await
            .with_context(|| place.clone())?;
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
    let text = statement.to_string();
    let state = ctx.state();
    let plan = state.statement_to_plan(statement).await?;
    let (plan, shared) = if ctes == CteReferences::RunOnce && is_query(&plan) {
        run_shared_ctes_once(&state, &text, plan, &mut Ok).await?
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
    use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};

    use super::*;

    /// A session with `t(a)` holding 1 to 10 and `counted(a)`, which returns `a` and adds the rows
    /// it was called on to the counter.
    fn counting_session() -> (SessionContext, Arc<AtomicUsize>) {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int32, false)]));
        let column: ArrayRef = Arc::new(Int32Array::from_iter_values(1..=10));
        let batch = RecordBatch::try_new(Arc::clone(&schema), vec![column]).expect("a batch");
        let ctx = SessionContext::new();
        let table = MemTable::try_new(schema, vec![vec![batch]]).expect("a table");
        ctx.register_table("t", Arc::new(table))
            .expect("registered");
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        ctx.register_udf(create_udf(
            "counted",
            vec![DataType::Int32],
            DataType::Int32,
            Volatility::Immutable,
            Arc::new(move |args: &[ColumnarValue]| {
                let rows = match &args[0] {
                    ColumnarValue::Array(array) => array.len(),
                    ColumnarValue::Scalar(_) => 1,
                };
                counter.fetch_add(rows, Ordering::Relaxed);
                Ok(args[0].clone())
            }),
        ));
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
}
