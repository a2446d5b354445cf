//! `ebiq report`: every query in the queries folder over the registered dataset, one output each.
//!
//! Queries take parameters as named placeholders (`$from_month`, `$to_month`), bound as values by
//! DataFusion, never pasted into the SQL text.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Int64Type, SchemaRef};
use datafusion::common::metadata::ScalarAndMetadata;
use datafusion::common::{DataFusionError, ParamValues};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::parser::ParserError;

use crate::months::Month;
use crate::output::{OutputFormat, write_batches, write_file};
use crate::progress::Progress;
use crate::suppress::suppress;

/// What to run and where to put it, already validated.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    pub queries: PathBuf,
    /// A folder for one file per query; `None` prints to stdout.
    pub out: Option<PathBuf>,
    pub format: OutputFormat,
    pub from: Option<Month>,
    pub to: Option<Month>,
    /// Apply small-number suppression to every count ([`crate::suppress`]).
    pub suppress: bool,
}

/// One report query: a `.sql` file whose leading comment says what it answers.
#[derive(Debug, Clone)]
pub struct QueryFile {
    /// The file name without `.sql`: names the output.
    pub name: String,
    pub path: PathBuf,
    /// The leading comment's first line.
    pub title: String,
    pub sql: String,
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
            Ok(QueryFile {
                name,
                path,
                title,
                sql,
            })
        })
        .collect()
}

/// The values of the placeholders a report may use.
#[derive(Debug, Clone)]
pub struct Parameters(HashMap<&'static str, ScalarValue>);

impl Parameters {
    pub fn new(from: Option<Month>, to: Option<Month>) -> Self {
        let month = |m: Option<Month>, default: &str| {
            ScalarValue::Utf8(Some(m.map_or_else(|| default.to_owned(), |m| m.yyyymm())))
        };
        Self(HashMap::from([
            ("from_month", month(from, "000000")),
            ("to_month", month(to, "999999")),
        ]))
    }
}

/// A query's planning error; a syntax error as `file:line:column: message`, as compilers write it.
fn located(path: &Path, error: DataFusionError) -> anyhow::Error {
    if let DataFusionError::SQL(parser_error, _) = error.find_root() {
        let text = match parser_error.as_ref() {
            ParserError::ParserError(text) | ParserError::TokenizerError(text) => text.as_str(),
            ParserError::RecursionLimitExceeded => "statement nested too deeply",
        };
        if let Some((message, place)) = text.rsplit_once(" at Line: ")
            && let Some((line, column)) = place.split_once(", Column: ")
        {
            return anyhow::anyhow!("{}:{line}:{column}: {message}", path.display());
        }
    }
    anyhow::Error::new(error).context(format!("query {}", path.display()))
}

/// Plans and runs one query with its parameters bound.
pub async fn run_query(
    ctx: &SessionContext,
    query: &QueryFile,
    parameters: &Parameters,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let at = || format!("query {}", query.path.display());
    let frame = match ctx.sql(&query.sql).await {
        Ok(frame) => frame,
        Err(error) => return Err(located(&query.path, error)),
    };
    let used = frame
        .logical_plan()
        .get_parameter_types()
        .with_context(at)?;
    let mut values = HashMap::new();
    for name in used.keys() {
        let Some(value) = parameters.0.get(name.trim_start_matches('$')) else {
            let mut known: Vec<_> = parameters.0.keys().map(|k| format!("${k}")).collect();
            known.sort();
            bail!(
                "{} uses the parameter {name}, which ebiq does not provide (it provides {})",
                at(),
                known.join(", ")
            );
        };
        values.insert(
            name.trim_start_matches('$').to_owned(),
            ScalarAndMetadata::from(value.clone()),
        );
    }
    let frame = if values.is_empty() {
        frame
    } else {
        frame
            .with_param_values(ParamValues::Map(values))
            .with_context(at)?
    };
    let schema = frame.schema().inner().clone();
    let batches = frame.collect().await.with_context(at)?;
    Ok((schema, batches))
}

/// What a report run did.
#[derive(Debug, Default)]
pub struct ReportSummary {
    pub queries: usize,
    /// `opa` rows in the month range.
    pub rows_scanned: u64,
    /// The sum of the `flagged` column of the first query that has one.
    pub rows_flagged: Option<u64>,
    pub outputs: Vec<PathBuf>,
    /// Each query, in the order run, with its output.
    pub ran: Vec<QueryRun>,
    /// Records with values out of range, over the whole dataset.
    pub quality: DataQuality,
    pub elapsed: Duration,
}

/// One query as run: where its result went and how many rows it had.
#[derive(Debug, Clone)]
pub struct QueryRun {
    pub query: QueryFile,
    pub output: Option<PathBuf>,
    pub rows: usize,
}

/// Runs every query of `settings.queries` and writes one output per query.
pub async fn run_report(
    ctx: &SessionContext,
    settings: &ReportSettings,
    progress: &Progress,
    stdout: &mut (impl Write + Send),
) -> Result<ReportSummary> {
    let started = Instant::now();
    let queries = load_queries(&settings.queries)?;
    let parameters = Parameters::new(settings.from, settings.to);
    if let Some(out) = &settings.out {
        std::fs::create_dir_all(out)
            .with_context(|| format!("cannot create the output folder {}", out.display()))?;
    }
    let mut summary = ReportSummary {
        queries: queries.len(),
        ..ReportSummary::default()
    };
    let bar = progress.bar(queries.len() as u64, "queries");
    // Every query runs before anything is written, so a failing query leaves no new outputs.
    let mut results = Vec::with_capacity(queries.len());
    for query in &queries {
        bar.set_message(query.name.clone());
        let (schema, batches) = run_query(ctx, query, &parameters).await?;
        if summary.rows_flagged.is_none() {
            summary.rows_flagged = sum_column(&batches, "flagged");
        }
        if settings.suppress {
            let (schema, batch) = suppress(&schema, &batches)
                .with_context(|| format!("cannot suppress {}", query.path.display()))?;
            results.push((query, schema, vec![batch]));
        } else {
            results.push((query, schema, batches));
        }
        bar.inc(1);
    }
    for (query, schema, batches) in results {
        let rows = batches.iter().map(RecordBatch::num_rows).sum();
        let output = match &settings.out {
            Some(out) => {
                let path = out.join(format!("{}.{}", query.name, settings.format.extension()));
                write_file(&path, settings.format, &schema, &batches)?;
                summary.outputs.push(path.clone());
                Some(path)
            }
            None => {
                if settings.format == OutputFormat::Table {
                    writeln!(stdout, "{}: {}", query.name, query.title)?;
                }
                write_batches(settings.format, &schema, &batches, stdout)?;
                None
            }
        };
        summary.ran.push(QueryRun {
            query: query.clone(),
            output,
            rows,
        });
    }
    bar.finish_and_clear();
    summary.rows_scanned = count_opa_rows(ctx, &parameters).await?;
    summary.quality = data_quality(ctx, &parameters).await?;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

async fn count_opa_rows(ctx: &SessionContext, parameters: &Parameters) -> Result<u64> {
    let (_, batches) = run_query(
        ctx,
        &internal_query(
            "rows_scanned",
            "SELECT count(*) AS n FROM opa \
             WHERE sus_month(der_activity_month) BETWEEN $from_month AND $to_month",
        ),
        parameters,
    )
    .await?;
    Ok(sum_column(&batches, "n").unwrap_or(0))
}

/// Outpatient records no report can count, whatever the month range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DataQuality {
    /// `Der_Activity_Month` NULL or not a valid yyyymm (202413).
    pub invalid_month: u64,
    /// Age 999 (unknown) in the age the rule reads.
    pub unknown_age: u64,
    /// An age that is neither 0-130, 999, nor 7001-7007 (infants).
    pub impossible_age: u64,
}

async fn data_quality(ctx: &SessionContext, parameters: &Parameters) -> Result<DataQuality> {
    let age = "coalesce(age_at_start_of_episode_sus, der_age_at_cds_activity_date)";
    let sql = format!(
        "SELECT \
           count(*) FILTER (WHERE sus_month(der_activity_month) IS NULL) AS invalid_month, \
           count(*) FILTER (WHERE {age} = 999) AS unknown_age, \
           count(*) FILTER (WHERE {age} NOT BETWEEN 0 AND 130 AND {age} <> 999 \
                              AND {age} NOT BETWEEN 7001 AND 7007) AS impossible_age \
         FROM opa"
    );
    let (_, batches) = run_query(ctx, &internal_query("data_quality", &sql), parameters).await?;
    Ok(DataQuality {
        invalid_month: sum_column(&batches, "invalid_month").unwrap_or(0),
        unknown_age: sum_column(&batches, "unknown_age").unwrap_or(0),
        impossible_age: sum_column(&batches, "impossible_age").unwrap_or(0),
    })
}

fn internal_query(name: &str, sql: &str) -> QueryFile {
    QueryFile {
        name: name.into(),
        path: PathBuf::from(format!("(ebiq's {name} count)")),
        title: String::new(),
        sql: sql.into(),
    }
}

fn sum_column(batches: &[RecordBatch], name: &str) -> Option<u64> {
    let mut total = 0u64;
    for batch in batches {
        let values = batch
            .column_by_name(name)?
            .as_primitive_opt::<Int64Type>()?;
        total += values.iter().flatten().map(i64::unsigned_abs).sum::<u64>();
    }
    Some(total)
}
