//! `ebiq report`: every query in the queries folder over a dataset, one output each, written all
//! or nothing, with a run summary on stderr and (with `--out`) a manifest.

mod charts;
mod html;
mod manifest;
mod month_counts;
mod query;
mod summary;
pub mod suppress;
mod tap;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;

pub use manifest::MANIFEST;
pub use query::{Parameters, QueryFile, load_queries, run_query};
pub use summary::{DataQuality, QueryRun, ReportSummary};

use crate::dataset::missing_column;
use crate::dataset::validate::InputFile;
use crate::months::Month;
use crate::output::{OutputFormat, ResultsOut, write_atomically, write_batches, write_file};
use crate::plan::CteReferences;
use crate::plan::one_scan::{OPA, OneScan, run_in_one_scan};
use crate::plan::stems::{replace_stems, stems_of};
use crate::progress::Progress;
use crate::session::{self, SessionSettings};
use manifest::{RunRecord, write_manifest};
use query::{Planned, plan_query, run_planned};
use summary::{scan_summary, sum_column, summary_from_tallies};
use suppress::suppress;

/// What to run and where to put it, already validated.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    /// The folder of `*.sql` report queries.
    pub queries: PathBuf,
    /// A folder for one file per query; `None` prints to stdout.
    pub out: Option<PathBuf>,
    /// How results are written.
    pub format: OutputFormat,
    /// First activity month (`$from_month`); `None`: from the first.
    pub from: Option<Month>,
    /// Last activity month (`$to_month`); `None`: to the last.
    pub to: Option<Month>,
    /// Apply small-number suppression to every count ([`suppress`](mod@suppress)).
    pub suppress: bool,
}

/// The whole command: opens the session over the dataset, runs the queries, writes their outputs
/// and the manifest, and prints the summary to stderr.
pub async fn run(
    session_settings: &SessionSettings,
    settings: &ReportSettings,
    progress: &Progress,
) -> Result<()> {
    let started = chrono::Utc::now();
    let session = session::open(session_settings).await?;
    if let Some(out) = &settings.out {
        // A manifest says its outputs are complete; an earlier run's must not vouch for this
        // one's if this one fails.
        let stale = out.join(MANIFEST);
        if stale.exists() {
            std::fs::remove_file(&stale)
                .with_context(|| format!("cannot remove {}", stale.display()))?;
        }
    }
    let page = (settings.format == OutputFormat::Html)
        .then(|| page_info(session_settings, settings, &session, started));
    let mut stdout = ResultsOut::stdout();
    // A cluster's plans hide their scans, so its summary always has a scan of its own.
    let opa_files: Option<BTreeSet<String>> = session_settings.cluster.is_none().then(|| {
        let opa = session.inputs.iter().filter(|file| file.table == "opa");
        opa.map(|file| file.path.clone()).collect()
    });
    let run = ReportRun {
        ctx: &session.ctx,
        opa_files: opa_files.as_ref(),
        ctes: CteReferences::for_session(session_settings.cluster.is_some()),
        settings,
        page: page.as_ref(),
        progress,
    };
    let mut summary = run_report(&run, &mut stdout)
        .await
        .map_err(|error| missing_column(&error, &session.inputs).unwrap_or(error))?;
    summary.files_total = files_of_tables_read(&session.inputs, summary.files_read.as_ref());
    stdout.flush()?;
    for path in &summary.outputs {
        eprintln!("wrote {}", path.display());
    }
    if let Some(out) = &settings.out {
        let record = RunRecord {
            started,
            session: session_settings,
            report: settings,
            rules: &session.rules,
            inputs: &session.inputs,
            delta: &session.delta,
            summary: &summary,
        };
        let path = write_manifest(out, &record)?;
        eprintln!("wrote {}", path.display());
    }
    summary.print();
    Ok(())
}

/// How many files the tables the run read have (a table no query reads, such as `apcs` for the
/// outpatient reports, is not counted), so that fewer files read means partitions were skipped.
fn files_of_tables_read(inputs: &[InputFile], read: Option<&BTreeSet<String>>) -> usize {
    let Some(read) = read else {
        return inputs.len();
    };
    let tables: BTreeSet<&str> = inputs
        .iter()
        .filter(|file| read.contains(&file.path))
        .map(|file| file.table.as_str())
        .collect();
    inputs
        .iter()
        .filter(|file| tables.contains(file.table.as_str()))
        .count()
}

/// Adds a query's files to the run's; the run's become unknown if any query's are.
fn read_from(run: &mut Option<BTreeSet<String>>, query: Option<BTreeSet<String>>) {
    match (run.as_mut(), query) {
        (Some(run), Some(query)) => run.extend(query),
        _ => *run = None,
    }
}

/// The first table (or `table.column`) `query` requires that the session does not have.
async fn missing_requirement(ctx: &SessionContext, query: &QueryFile) -> Result<Option<String>> {
    for required in &query.requires {
        let (table, column) = match required.split_once('.') {
            Some((table, column)) => (table, Some(column)),
            None => (required.as_str(), None),
        };
        if !ctx.table_exist(table)? {
            return Ok(Some(format!(
                "the dataset has no {table} table (a {table}/ folder beside opa/)"
            )));
        }
        if let Some(column) = column {
            let schema = ctx.table(table).await?.schema().clone();
            if !schema.has_column_with_unqualified_name(&column.to_lowercase()) {
                return Ok(Some(format!("the {table} table has no column {column}")));
            }
        }
    }
    Ok(None)
}

/// What the HTML page says was run.
fn page_info(
    session: &SessionSettings,
    settings: &ReportSettings,
    opened: &session::Session,
    started: chrono::DateTime<chrono::Utc>,
) -> html::PageInfo {
    let rules = &opened.rules;
    let versions: Vec<String> = opened
        .delta
        .iter()
        .map(|read| format!("{} Delta version {}", read.table, read.version))
        .collect();
    let data = if versions.is_empty() {
        session.data.clone()
    } else {
        format!("{} ({})", session.data, versions.join(", "))
    };
    let month = |m: Option<Month>, open: &str| m.map_or_else(|| open.to_owned(), |m| m.to_string());
    html::PageInfo {
        rules: rules
            .as_slice()
            .iter()
            .map(|rule| {
                let title = rule.title.clone().unwrap_or_else(|| rule.name.clone());
                let hash = &manifest::sha256(rule.source.as_bytes())[..12];
                let edition = match rule.edition() {
                    edition if edition.is_empty() => format!("text {hash}"),
                    edition => format!("{edition}, text {hash}"),
                };
                (rule.name.clone(), title, edition)
            })
            .collect(),
        null_mode: session.null_mode.to_string(),
        months: format!(
            "{} to {}",
            month(settings.from, "the first"),
            month(settings.to, "the last")
        ),
        data,
        suppressed: settings.suppress,
        started: started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }
}

/// What [`run_report`] runs, and where.
struct ReportRun<'a> {
    ctx: &'a SessionContext,
    /// Every file of `opa`, if a query's scan of them may also count the run summary.
    opa_files: Option<&'a BTreeSet<String>>,
    /// How a CTE referenced more than once runs: once, unless on a cluster, whose executors
    /// cannot read this process's temporary files.
    ctes: CteReferences,
    settings: &'a ReportSettings,
    /// With a page, one HTML page holds every result.
    page: Option<&'a html::PageInfo>,
    progress: &'a Progress,
}

/// Runs every query of `settings.queries` over `ctx` and writes one output per query, or with
/// `page` one HTML page holding them all. Every query runs before anything is written, so a
/// failing query leaves no new outputs.
async fn run_report(
    run: &ReportRun<'_>,
    stdout: &mut (impl Write + Send),
) -> Result<ReportSummary> {
    let started = Instant::now();
    let settings = run.settings;
    let queries = load_queries(&settings.queries)?;
    let parameters = Parameters::new(settings.from, settings.to);
    if let Some(out) = &settings.out {
        std::fs::create_dir_all(out)
            .with_context(|| format!("cannot create the output folder {}", out.display()))?;
    }
    let mut summary = ReportSummary {
        files_read: Some(BTreeSet::new()),
        ..ReportSummary::default()
    };
    let (results, tallies) = run_queries(run, &queries, &parameters, &mut summary).await?;
    match run.page {
        Some(info) => write_page(info, settings, results, &mut summary, stdout)?,
        None => write_outputs(settings, results, &mut summary, stdout)?,
    }
    summary.queries = summary.ran.len();
    let files_read;
    (summary.rows_scanned, summary.quality, files_read) = match tallies {
        Some((query, tallies)) => {
            summary.counted_by = Some(query);
            let (rows, quality) = summary_from_tallies(run.ctx, tallies, &parameters).await?;
            (rows, quality, Some(BTreeSet::new()))
        }
        None => scan_summary(run.ctx, &parameters).await?,
    };
    read_from(&mut summary.files_read, files_read);
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// A query's result, held until every query has run.
struct Answered<'q> {
    query: &'q QueryFile,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    ctes_run_once: Vec<(String, usize)>,
    from_shared_scan: Vec<(String, usize)>,
}

impl Answered<'_> {
    fn ran(self, output: Option<PathBuf>) -> QueryRun {
        QueryRun {
            query: self.query.clone(),
            output,
            rows: self.batches.iter().map(RecordBatch::num_rows).sum(),
            ctes_run_once: self.ctes_run_once,
            from_shared_scan: self.from_shared_scan,
        }
    }
}

/// The run summary's tallies and the query whose scan counted them.
type Counted = Option<(String, tap::Tallies)>;

/// Runs each query whose tables and columns the dataset has (noting the others as skipped): the
/// parts of every query that read `opa` alone from one scan of it, which also counts the run
/// summary when it reads every row; then each query, over their results. A query with a read of
/// `opa` that the shared scan cannot serve reads it itself; the first such read of every row
/// counts the summary if the shared scan did not.
async fn run_queries<'q>(
    run: &ReportRun<'_>,
    queries: &'q [QueryFile],
    parameters: &Parameters,
    summary: &mut ReportSummary,
) -> Result<(Vec<Answered<'q>>, Counted)> {
    let ctx = run.ctx;
    let bar = run.progress.bar(queries.len() as u64, "queries");
    let mut planned = Vec::with_capacity(queries.len());
    for query in queries {
        if let Some(missing) = missing_requirement(ctx, query).await? {
            eprintln!("skipped {}: {missing}", query.name);
            summary.skipped.push(query.name.clone());
            bar.inc(1);
            continue;
        }
        let plan = plan_query(ctx, query, parameters).await?;
        let stems = match run.ctes {
            CteReferences::RunOnce => stems_of(&plan.plan, OPA)?,
            CteReferences::Inline => None,
        };
        planned.push((query, plan, stems));
    }
    bar.set_message(format!("one scan of {OPA}"));
    let (one_scan, mut tallies) = read_opa_once(run, &planned).await?;
    let mut answered = Vec::with_capacity(planned.len());
    let mut served = Vec::with_capacity(planned.len());
    for (query, mut plan, stems) in planned {
        let shared = stems.filter(|stems| one_scan.serves(stems));
        if shared.is_some() {
            plan.plan = replace_stems(plan.plan, &one_scan.replacements)?;
        }
        served.push((query, plan, shared));
    }
    if tallies.is_some() {
        // The shared scan counted the summary, so the queries (over its results, mostly:
        // planning and a few small joins each) run side by side. On a cluster (no tallies) each
        // is a job of its own, sent one after another as before.
        bar.set_message("queries");
        let mut tasks = tokio::task::JoinSet::new();
        let mut waiting = Vec::with_capacity(served.len());
        for (position, (query, plan, shared)) in served.into_iter().enumerate() {
            let owned = query.clone();
            let ctes = run.ctes;
            tasks.spawn(async move { (position, run_planned(&owned, plan, ctes, Ok).await) });
            waiting.push((query, shared, None));
        }
        while let Some(joined) = tasks.join_next().await {
            let (position, result) = joined.context("a report query stopped unexpectedly")?;
            if let Some((_, _, slot)) = waiting.get_mut(position) {
                *slot = Some(result);
            }
            bar.inc(1);
        }
        for (query, shared, result) in waiting {
            let result = result.context("a report query did not finish")??;
            answered.push(answer(run, query, result, shared, &one_scan, summary)?);
        }
    } else {
        for (query, plan, shared) in served {
            bar.set_message(query.name.clone());
            let result = match run
                .opa_files
                .filter(|_| tallies.is_none() && shared.is_none())
            {
                Some(files) => {
                    let mut tapped = None;
                    // The first plan that scans every `opa` row counts the summary: a shared
                    // CTE's (the query's own plan then reads its results), else the query's.
                    let result = run_planned(query, plan, run.ctes, |plan| {
                        if tapped.is_some() {
                            return Ok(plan);
                        }
                        let (plan, tap) = tap::tap(ctx, plan, files)?;
                        tapped = tap;
                        Ok(plan)
                    })
                    .await?;
                    tallies = tapped
                        .and_then(tap::Tap::into_tallies)
                        .map(|counted| (query.name.clone(), counted));
                    result
                }
                None => run_planned(query, plan, run.ctes, Ok).await?,
            };
            answered.push(answer(run, query, result, shared, &one_scan, summary)?);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    Ok((answered, tallies))
}

/// `query`'s result, as the report keeps it: noted in `summary` (the files it read, with the
/// scan's if it read the results of `shared`, its stems, and the flagged count of the first query
/// that has one), suppressed if the report is.
fn answer<'q>(
    run: &ReportRun<'_>,
    query: &'q QueryFile,
    result: query::QueryResult,
    shared: Option<Vec<LogicalPlan>>,
    one_scan: &OneScan,
    summary: &mut ReportSummary,
) -> Result<Answered<'q>> {
    let (files_read, from_shared_scan) = match &shared {
        Some(stems) => (
            one_scan.files_read_with(result.files_read),
            one_scan.results_of(stems, &query.name),
        ),
        None => (result.files_read, Vec::new()),
    };
    read_from(&mut summary.files_read, files_read);
    if summary.rows_flagged.is_none() {
        summary.rows_flagged = sum_column(&result.batches, "flagged");
    }
    let (schema, batches) = if run.settings.suppress {
        let (schema, batch) =
            suppress(&result.schema, &result.batches, query.dimensions.as_deref())
                .with_context(|| format!("cannot suppress {}", query.path.display()))?;
        (schema, vec![batch])
    } else {
        (result.schema, result.batches)
    };
    Ok(Answered {
        query,
        schema,
        batches,
        ctes_run_once: result.ctes_run_once,
        from_shared_scan,
    })
}

/// Runs the stems of every query over `opa` from one scan of it, tapped for the run summary (the
/// tallies named after the queries it serves).
async fn read_opa_once(
    run: &ReportRun<'_>,
    planned: &[(&QueryFile, Planned, Option<Vec<LogicalPlan>>)],
) -> Result<(OneScan, Counted)> {
    let mut stems: Vec<LogicalPlan> = Vec::new();
    let mut served = Vec::new();
    for (query, _, of_query) in planned {
        let Some(of_query) = of_query else { continue };
        for stem in of_query {
            if !stems.contains(stem) {
                stems.push(stem.clone());
            }
        }
        served.push(query.name.as_str());
    }
    let Some((_, first, _)) = planned.first().filter(|_| !stems.is_empty()) else {
        return Ok((OneScan::default(), None));
    };
    let mut tapped = None;
    let mut rewrite = |plan| match run.opa_files {
        Some(files) => {
            let (plan, tap) = tap::tap(run.ctx, plan, files)?;
            tapped = tap;
            Ok(plan)
        }
        None => Ok(plan),
    };
    let one_scan = run_in_one_scan(
        &first.state,
        OPA,
        &stems,
        &tap::SUMMARY_COLUMNS,
        &mut rewrite,
    )
    .await?;
    let tallies = tapped
        .and_then(tap::Tap::into_tallies)
        .map(|counted| (served.join(", "), counted));
    Ok((one_scan, tallies))
}

/// Every result on one HTML page, to `report.html` in `--out` or to stdout.
fn write_page(
    info: &html::PageInfo,
    settings: &ReportSettings,
    answered: Vec<Answered<'_>>,
    summary: &mut ReportSummary,
    stdout: &mut (impl Write + Send),
) -> Result<()> {
    let shown: Vec<html::Shown<'_>> = answered
        .iter()
        .map(|a| html::Shown {
            query: a.query,
            schema: &a.schema,
            batches: &a.batches,
        })
        .collect();
    let text = html::render(info, &shown)?;
    let path = settings.out.as_ref().map(|out| out.join("report.html"));
    match &path {
        Some(path) => {
            write_atomically(path, |file| Ok(file.write_all(text.as_bytes())?))?;
            summary.outputs.push(path.clone());
        }
        None => stdout.write_all(text.as_bytes())?,
    }
    summary
        .ran
        .extend(answered.into_iter().map(|a| a.ran(path.clone())));
    Ok(())
}

/// Each result in the report's format: a file per query in `--out`, or one after another on
/// stdout (tables headed by the query's name and title).
fn write_outputs(
    settings: &ReportSettings,
    answered: Vec<Answered<'_>>,
    summary: &mut ReportSummary,
    stdout: &mut (impl Write + Send),
) -> Result<()> {
    for a in answered {
        let output = match &settings.out {
            Some(out) => {
                let path = out.join(format!("{}.{}", a.query.name, settings.format.extension()));
                write_file(&path, settings.format, &a.schema, &a.batches)?;
                summary.outputs.push(path.clone());
                Some(path)
            }
            None => {
                if settings.format == OutputFormat::Table {
                    writeln!(stdout, "{}: {}", a.query.name, a.query.title)?;
                }
                write_batches(settings.format, &a.schema, &a.batches, stdout)?;
                None
            }
        };
        summary.ran.push(a.ran(output));
    }
    Ok(())
}
