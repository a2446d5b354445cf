//! The run summary: outpatient rows in the month range, rows flagged, and the records no report
//! can count, printed to stderr (and recorded in the manifest).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use anyhow::Result;
use datafusion::arrow::array::{ArrayRef, AsArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
use datafusion::execution::FunctionRegistry;
use datafusion::prelude::SessionContext;

use super::query::{Parameters, QueryFile, internal_query, run_query};
use super::tap::{Tallies, Tally};

/// What a report run did.
#[derive(Debug, Default)]
pub struct ReportSummary {
    /// Queries run.
    pub queries: usize,
    /// Queries skipped for want of an optional table.
    pub skipped: Vec<String>,
    /// `opa` rows in the month range.
    pub rows_scanned: u64,
    /// The sum of the `flagged` column of the first query that has one.
    pub rows_flagged: Option<u64>,
    /// Files written, in the order written.
    pub outputs: Vec<PathBuf>,
    /// Each query, in the order run, with its output.
    pub ran: Vec<QueryRun>,
    /// Records with values out of range.
    pub quality: DataQuality,
    /// The files the queries and the summary read, after partition pruning; `None` when the
    /// plans do not say (on a cluster).
    pub files_read: Option<BTreeSet<String>>,
    /// The files of the tables the run read.
    pub files_total: usize,
    /// The report query whose scan of `opa` the summary was counted from; `None` when the summary
    /// needed a scan of its own.
    pub counted_by: Option<String>,
    /// Wall time of the queries and their outputs.
    pub elapsed: Duration,
}

/// One query as run: where its result went and how many rows it had.
#[derive(Debug, Clone)]
pub struct QueryRun {
    /// The query file.
    pub query: QueryFile,
    /// The file its result went to; `None` for stdout.
    pub output: Option<PathBuf>,
    /// Rows in its result.
    pub rows: usize,
    /// The CTEs it referred to more than once that ran once, with the rows each returned.
    pub ctes_run_once: Vec<(String, usize)>,
    /// The parts of it read from the run's one scan of `opa` (a CTE by its name, else the query
    /// by its own), with the rows each returned; empty when it read `opa` itself or not at all.
    pub from_shared_scan: Vec<(String, usize)>,
}

/// Outpatient records no report can count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DataQuality {
    /// `Der_Activity_Month` NULL or not a valid yyyymm (202413), in the whole table: such a
    /// record falls in no month range.
    pub invalid_month: u64,
    /// Records in the month range with age 999 (unknown) in the age the rule reads.
    pub unknown_age: u64,
    /// Records in the month range with an age that is neither 0-130, 999, nor 7001-7007 (infants).
    pub impossible_age: u64,
}

impl ReportSummary {
    /// The summary lines for stderr: rows and time, then the data-quality counts if any.
    pub fn print(&self) {
        let flagged = self
            .rows_flagged
            .map_or_else(|| "unknown".to_owned(), |n| n.to_string());
        eprintln!(
            "{} queries over {} outpatient rows, {flagged} flagged, in {:.2}s",
            self.queries,
            self.rows_scanned,
            self.elapsed.as_secs_f64()
        );
        if let Some(read) = &self.files_read
            && read.len() < self.files_total
        {
            eprintln!(
                "read {} of {} files (partition pruning skipped the rest)",
                read.len(),
                self.files_total
            );
        }
        let quality = self.quality;
        if quality != DataQuality::default() {
            eprintln!(
                "data: {} outpatient records with an invalid activity month (never counted), \
                 {} with age unknown (999) and {} with an impossible age (never flagged)",
                quality.invalid_month, quality.unknown_age, quality.impossible_age
            );
        }
    }
}

/// `opa` rows in the month range and the [`DataQuality`] counts, in one scan, with the files it
/// read. The scan tallies rows and odd ages by the raw `der_activity_month` value, and only the
/// few tallies go through `sus_month` and the range: parsing the month of every row cost twice
/// the CPU of the whole grouped scan. With a month range, the scan reads only the rows in it or
/// with an invalid month, so that month partitions and row groups outside it are skipped; without
/// one, that filter would only cost time.
pub(super) async fn scan_summary(
    ctx: &SessionContext,
    parameters: &Parameters,
) -> Result<(u64, DataQuality, Option<BTreeSet<String>>)> {
    let ages = "age_at_start_of_episode_sus, der_age_at_cds_activity_date";
    let narrowed = if parameters.is_bounded() {
        format!(
            " WHERE {} OR sus_month(der_activity_month) IS NULL",
            in_range("der_activity_month")
        )
    } else {
        String::new()
    };
    let sql = format!(
        "WITH by_month AS ( \
           SELECT der_activity_month AS month, count(*) AS records, \
             count(*) FILTER (WHERE sus_age_unknown({ages})) AS unknown_age, \
             count(*) FILTER (WHERE sus_age_impossible({ages})) AS impossible_age \
           FROM opa{narrowed} GROUP BY der_activity_month) {totals}",
        totals = totals_sql(),
    );
    let result = run_query(ctx, &internal_query("summary", &sql), parameters).await?;
    let (in_range, quality) = totals(&result.batches);
    Ok((in_range, quality, result.files_read))
}

/// The same counts from tallies a report query's scan made ([`super::tap`]), in a session of its
/// own so that the user's sees no extra table.
pub(super) async fn summary_from_tallies(
    ctx: &SessionContext,
    tallies: Tallies,
    parameters: &Parameters,
) -> Result<(u64, DataQuality)> {
    let (months, counts): (Vec<Option<String>>, Vec<Tally>) = tallies.into_iter().unzip();
    let column = |count: fn(&Tally) -> u64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(
            counts.iter().map(|tally| count(tally) as i64),
        ))
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new("month", DataType::Utf8, true),
        Field::new("records", DataType::Int64, false),
        Field::new("unknown_age", DataType::Int64, false),
        Field::new("impossible_age", DataType::Int64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(months)),
            column(|tally| tally.records),
            column(|tally| tally.unknown_age),
            column(|tally| tally.impossible_age),
        ],
    )?;
    let own = SessionContext::new();
    own.register_udf(ctx.udf("sus_month")?.as_ref().clone());
    own.register_batch("by_month", batch)?;
    let result = run_query(&own, &internal_query("summary", &totals_sql()), parameters).await?;
    Ok(totals(&result.batches))
}

/// The totals over `by_month` (`month`, `records`, `unknown_age`, `impossible_age`): only
/// records in the month range count, but every invalid month does.
fn totals_sql() -> String {
    format!(
        "SELECT \
           sum(records) FILTER (WHERE {in_range}) AS in_range, \
           sum(records) FILTER (WHERE sus_month(month) IS NULL) AS invalid_month, \
           sum(unknown_age) FILTER (WHERE {in_range}) AS unknown_age, \
           sum(impossible_age) FILTER (WHERE {in_range}) AS impossible_age \
         FROM by_month",
        in_range = in_range("month"),
    )
}

fn in_range(month: &str) -> String {
    format!("sus_month({month}) BETWEEN $from_month AND $to_month")
}

fn totals(batches: &[RecordBatch]) -> (u64, DataQuality) {
    let quality = DataQuality {
        invalid_month: sum_column(batches, "invalid_month").unwrap_or(0),
        unknown_age: sum_column(batches, "unknown_age").unwrap_or(0),
        impossible_age: sum_column(batches, "impossible_age").unwrap_or(0),
    };
    (sum_column(batches, "in_range").unwrap_or(0), quality)
}

/// The sum of an Int64 column over `batches`; `None` if they have no such column.
pub(super) fn sum_column(batches: &[RecordBatch], name: &str) -> Option<u64> {
    let mut total = 0u64;
    for batch in batches {
        let values = batch
            .column_by_name(name)?
            .as_primitive_opt::<Int64Type>()?;
        total += values.iter().flatten().map(i64::unsigned_abs).sum::<u64>();
    }
    Some(total)
}
