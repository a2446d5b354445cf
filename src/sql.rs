//! `ebiq sql`: one statement, or a file of them, over the same session as `report` and `shell`, for
//! scripts and schedulers. Results go to stdout (or `--out`), errors name the file and statement.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::ast::Spanned;

use crate::dataset::missing_column;
use crate::output::{OutputFormat, ResultsOut, write_batches, write_file};
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
    run_sql(&session.ctx, settings, &mut stdout)
        .await
        .map_err(|error| missing_column(&error, &session.inputs).unwrap_or(error))?;
    stdout.flush()?;
    Ok(())
}

/// Runs every statement in order; stops at the first error.
pub async fn run_sql(
    ctx: &SessionContext,
    settings: &SqlSettings,
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
        let plan = ctx
            .state()
            .statement_to_plan(statement)
            .await
            .with_context(|| place.clone())?;
        let frame = ctx
            .execute_logical_plan(plan)
            .await
            .with_context(|| place.clone())?;
        let schema = frame.schema().inner().clone();
        let batches = frame.collect().await.with_context(|| place.clone())?;
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

fn statement_line(statement: &Statement) -> Option<u64> {
    match statement {
        Statement::Statement(inner) => Some(inner.span().start.line).filter(|&line| line > 0),
        _ => None,
    }
}
