//! The run summary counted from a report query's own scan of `opa`, when that scan reads every row.
//!
//! The summary's own scan cost a third of the main report's time, nearly all of it decoding the
//! month and both ages, which queries/01 has just decoded. A pass-through node over the query's
//! scan tallies them as the batches go by. Its tallies are used only when they are provably
//! whole: the scan was given every `opa` file and passed on exactly as many rows as their footers
//! hold. Row-group pruning, a limit, a filter pushed into the reader or a stream dropped early
//! would each pass on fewer, and the report then falls back to the summary's own scan.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use datafusion::arrow::array::{Array, AsArray, BooleanArray};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeIterator, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, exec_datafusion_err, exec_err};
use datafusion::error::Result;
use datafusion::execution::{FunctionRegistry, SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use super::month_counts::tally_batch;
use crate::plan::scanned::{as_file_scan, scanned_files};

/// The month column and the two age columns the summary reads, as the report queries name them.
const MONTH: &str = "der_activity_month";
const AGES: [&str; 2] = [
    "age_at_start_of_episode_sus",
    "der_age_at_cds_activity_date",
];

/// Every column the summary reads: a scan that reads them can be tapped.
pub(super) const SUMMARY_COLUMNS: [&str; 3] = [MONTH, AGES[0], AGES[1]];

/// Records of one raw `der_activity_month` value, and how many of them have an unknown or an
/// impossible age.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tally {
    pub records: u64,
    pub unknown_age: u64,
    pub impossible_age: u64,
}

impl Tally {
    pub(super) fn add(&mut self, other: Tally) {
        self.records += other.records;
        self.unknown_age += other.unknown_age;
        self.impossible_age += other.impossible_age;
    }
}

/// Tallies by raw month value (`None` for NULL).
pub(super) type Tallies = HashMap<Option<String>, Tally>;

#[derive(Debug, Default)]
struct Seen {
    by_month: Tallies,
    rows: u64,
}

/// What a tapped scan has seen; read it once the plan has run.
#[derive(Debug)]
pub(super) struct Tap {
    seen: Arc<Mutex<Seen>>,
    rows_in_files: u64,
}

impl Tap {
    /// The tallies, if the scan passed on every row of its files; `None` if it passed on fewer.
    pub(super) fn into_tallies(self) -> Option<Tallies> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        (seen.rows == self.rows_in_files).then(|| std::mem::take(&mut seen.by_month))
    }
}

/// `plan` with a tallying node over its scan of exactly `opa_files`, if it has one whose output
/// holds the month (as text) and both ages and whose files' footers give their row counts;
/// otherwise `plan` unchanged and no tap.
pub(super) fn tap(
    ctx: &SessionContext,
    plan: Arc<dyn ExecutionPlan>,
    opa_files: &BTreeSet<String>,
) -> Result<(Arc<dyn ExecutionPlan>, Option<Tap>)> {
    let Some((scan, rows_in_files)) = scan_of_all(&plan, opa_files) else {
        return Ok((plan, None));
    };
    let schema = scan.schema();
    let Some(month) = column_index(&schema, MONTH) else {
        return Ok((plan, None));
    };
    if !matches!(
        schema.field(month).data_type(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    ) {
        return Ok((plan, None));
    }
    let mut ages = Vec::with_capacity(AGES.len());
    for age in AGES {
        let Some(index) = column_index(&schema, age) else {
            return Ok((plan, None));
        };
        ages.push(Expr::Column(Column::new_unqualified(
            schema.field(index).name(),
        )));
    }
    let df_schema = DFSchema::try_from(Arc::clone(&schema))?;
    let check = |name: &str| -> Result<Arc<dyn PhysicalExpr>> {
        ctx.create_physical_expr(ctx.udf(name)?.call(ages.clone()), &df_schema)
    };
    // Ages the checks refuse (text, say) are left for the summary's own scan to report.
    let (Ok(unknown_age), Ok(impossible_age)) =
        (check("sus_age_unknown"), check("sus_age_impossible"))
    else {
        return Ok((plan, None));
    };
    let seen = Arc::new(Mutex::new(Seen::default()));
    let node: Arc<dyn ExecutionPlan> = Arc::new(TapExec {
        input: Arc::clone(&scan),
        month,
        age_checks: [unknown_age, impossible_age],
        seen: Arc::clone(&seen),
    });
    let mut node = Some(node);
    let plan = plan
        .transform_up(|each| {
            if Arc::ptr_eq(&each, &scan)
                && let Some(node) = node.take()
            {
                Ok(Transformed::yes(node))
            } else {
                Ok(Transformed::no(each))
            }
        })?
        .data;
    Ok((
        plan,
        Some(Tap {
            seen,
            rows_in_files,
        }),
    ))
}

/// The first file scan in `plan` given exactly `files` (a large file may be split into byte
/// ranges, each read once), with the rows the files' footers say they hold.
fn scan_of_all(
    plan: &Arc<dyn ExecutionPlan>,
    files: &BTreeSet<String>,
) -> Option<(Arc<dyn ExecutionPlan>, u64)> {
    let mut found = None;
    plan.apply(|node| {
        let Some(scan) = as_file_scan(node) else {
            return Ok(TreeNodeRecursion::Continue);
        };
        let mut rows_by_file = HashMap::new();
        for (name, file) in scanned_files(scan) {
            let rows = match file.statistics.as_ref().map(|stats| stats.num_rows) {
                Some(Precision::Exact(rows)) => Some(rows as u64),
                _ => None,
            };
            rows_by_file.insert(name, rows);
        }
        let same_files = rows_by_file.len() == files.len()
            && files.iter().all(|file| rows_by_file.contains_key(file));
        if same_files && let Some(rows) = rows_by_file.values().copied().sum::<Option<u64>>() {
            found = Some((Arc::clone(node), rows));
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .ok()?;
    found
}

/// The index of the field named `name` in any case, if exactly one is.
fn column_index(schema: &SchemaRef, name: &str) -> Option<usize> {
    let mut matching = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, field)| field.name().eq_ignore_ascii_case(name));
    let (index, _) = matching.next()?;
    matching.next().is_none().then_some(index)
}

/// Passes its input's batches on unchanged, tallying each by month and age.
#[derive(Debug)]
struct TapExec {
    input: Arc<dyn ExecutionPlan>,
    month: usize,
    /// `sus_age_unknown` and `sus_age_impossible` of the two ages.
    age_checks: [Arc<dyn PhysicalExpr>; 2],
    seen: Arc<Mutex<Seen>>,
}

impl DisplayAs for TapExec {
    fn fmt_as(&self, _format: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SummaryTapExec")
    }
}

impl ExecutionPlan for TapExec {
    fn name(&self) -> &str {
        "SummaryTapExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        self.age_checks.iter().apply_until_stop(f)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return exec_err!("SummaryTapExec takes one input, not {}", children.len());
        }
        Ok(Arc::new(TapExec {
            input: children.swap_remove(0),
            month: self.month,
            age_checks: self.age_checks.clone(),
            seen: Arc::clone(&self.seen),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let schema = input.schema();
        let month = self.month;
        let checks = self.age_checks.clone();
        let seen = Arc::clone(&self.seen);
        let tallied = input.map(move |batch| {
            let batch = batch?;
            let [unknown, impossible] = checks.each_ref().map(|check| {
                check
                    .evaluate(&batch)
                    .and_then(|value| value.into_array(batch.num_rows()))
            });
            let (unknown, impossible) = (unknown?, impossible?);
            let mut by_month = Tallies::new();
            tally_batch(
                batch.column(month).as_ref(),
                [as_bools(&unknown)?, as_bools(&impossible)?],
                &mut by_month,
            )?;
            let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
            seen.rows += batch.num_rows() as u64;
            for (month, tally) in by_month {
                seen.by_month.entry(month).or_default().add(tally);
            }
            Ok(batch)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, tallied)))
    }
}

fn as_bools(array: &Arc<dyn Array>) -> Result<&BooleanArray> {
    array
        .as_boolean_opt()
        .ok_or_else(|| exec_datafusion_err!("an age check gave {}", array.data_type()))
}
