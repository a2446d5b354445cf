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

use datafusion::arrow::array::builder::make_view;
use datafusion::arrow::array::{
    Array, AsArray, BooleanArray, GenericStringArray, OffsetSizeTrait, StringViewArray,
};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, exec_datafusion_err, exec_err};
use datafusion::error::Result;
use datafusion::execution::{FunctionRegistry, SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion::prelude::SessionContext;
use futures::StreamExt;

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
    fn add(&mut self, other: Tally) {
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
        for expr in &self.age_checks {
            if f(expr)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
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

/// Adds the rows of one batch to `into`, whatever their order: extracts ordered by provider, by
/// patient or by load time mix every month in every batch.
fn tally_batch(month: &dyn Array, flags: [&BooleanArray; 2], into: &mut Tallies) -> Result<()> {
    if flags.iter().any(|flags| flags.len() != month.len()) {
        return exec_err!("an age check gave a flag per row of another length than the batch's");
    }
    let mut counts = MonthCounts::default();
    match month.data_type() {
        DataType::Utf8 => counts.count_text(month.as_string::<i32>(), flags),
        DataType::LargeUtf8 => counts.count_text(month.as_string::<i64>(), flags),
        DataType::Utf8View => counts.count_views(month.as_string_view(), flags),
        other => return exec_err!("the activity month became {other} during the scan"),
    }
    counts.add_to(into);
    Ok(())
}

/// A row's month, as the key it is counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum MonthKey<'a> {
    /// A month of at most 12 bytes (every `YYYYMM`) by its Arrow string view, which holds its
    /// length and all its bytes: equal keys are equal months, compared as one 16-byte integer.
    Short(u128),
    Long(&'a str),
    Null,
}

/// One batch's tallies by month, found for each row without allocating or hashing its text.
#[derive(Debug, Default)]
struct MonthCounts<'a> {
    /// Open addressing over `months` by the short key's bits; `EMPTY` where no month is.
    slots: Vec<u32>,
    months: Vec<(MonthKey<'a>, Tally)>,
    /// The tally of each long month and of NULL, found by a map (rare: real months are short).
    others: HashMap<MonthKey<'a>, usize>,
}

const EMPTY: u32 = u32::MAX;

impl<'a> MonthCounts<'a> {
    fn count_views(&mut self, months: &'a StringViewArray, flags: [&BooleanArray; 2]) {
        let views = months.views();
        self.count(months.len(), flags, |row| {
            if months.is_null(row) {
                MonthKey::Null
            } else if (views[row] as u32) <= MAX_INLINE {
                MonthKey::Short(views[row])
            } else {
                MonthKey::Long(months.value(row))
            }
        });
    }

    fn count_text<O: OffsetSizeTrait>(
        &mut self,
        months: &'a GenericStringArray<O>,
        flags: [&BooleanArray; 2],
    ) {
        self.count(months.len(), flags, |row| {
            if months.is_null(row) {
                return MonthKey::Null;
            }
            let month = months.value(row);
            if month.len() <= MAX_INLINE as usize {
                MonthKey::Short(make_view(month.as_bytes(), 0, 0))
            } else {
                MonthKey::Long(month)
            }
        });
    }

    fn count(
        &mut self,
        rows: usize,
        [unknown, impossible]: [&BooleanArray; 2],
        key_of: impl Fn(usize) -> MonthKey<'a>,
    ) {
        // Each row's month is found once, and the same as the row before's without a probe (files
        // cut by month hold long runs of one). The ages the checks flag are few: they are added
        // afterwards by their rows' months, so the loop over every row tests no flag.
        let mut month_of_row = Vec::with_capacity(rows);
        let mut last: Option<(MonthKey<'a>, usize)> = None;
        for row in 0..rows {
            let key = key_of(row);
            let index = match last {
                Some((seen, index)) if seen == key => index,
                _ => {
                    let index = self.index_of(key);
                    last = Some((key, index));
                    index
                }
            };
            self.months[index].1.records += 1;
            month_of_row.push(index);
        }
        for row in true_rows(unknown).set_indices() {
            self.months[month_of_row[row]].1.unknown_age += 1;
        }
        for row in true_rows(impossible).set_indices() {
            self.months[month_of_row[row]].1.impossible_age += 1;
        }
    }

    fn index_of(&mut self, key: MonthKey<'a>) -> usize {
        let MonthKey::Short(view) = key else {
            let next = self.months.len();
            let index = *self.others.entry(key).or_insert(next);
            if index == next {
                self.months.push((key, Tally::default()));
            }
            return index;
        };
        // A sparse table: a row's month is then in its first slot, and on files that mix months
        // the probe's branch does not depend on the month.
        if self.months.len() * 8 >= self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut slot = spread(view, self.slots.len());
        loop {
            match self.slots[slot] {
                EMPTY => {
                    let index = self.months.len();
                    self.slots[slot] = index as u32;
                    self.months.push((key, Tally::default()));
                    return index;
                }
                index if self.months[index as usize].0 == key => return index as usize,
                _ => slot = (slot + 1) & mask,
            }
        }
    }

    /// Doubles the table (at least 512 slots, 2 KiB), placing the short months again.
    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(512);
        self.slots = vec![EMPTY; size];
        let mask = size - 1;
        for (index, (key, _)) in self.months.iter().enumerate() {
            if let MonthKey::Short(view) = key {
                let mut slot = spread(*view, size);
                while self.slots[slot] != EMPTY {
                    slot = (slot + 1) & mask;
                }
                self.slots[slot] = index as u32;
            }
        }
    }

    fn add_to(self, into: &mut Tallies) {
        for (key, tally) in self.months {
            let month = match key {
                MonthKey::Short(view) => {
                    let length = view as u32 as usize;
                    let bytes = (view >> 32).to_le_bytes();
                    Some(String::from_utf8_lossy(&bytes[..length]).into_owned())
                }
                MonthKey::Long(text) => Some(text.to_owned()),
                MonthKey::Null => None,
            };
            into.entry(month).or_default().add(tally);
        }
    }
}

/// The longest string an Arrow view holds inline.
const MAX_INLINE: u32 = 12;

/// The rows where `flags` is TRUE; a NULL flag is not a flagged age (`true_count` would not count
/// it either).
fn true_rows(flags: &BooleanArray) -> BooleanBuffer {
    match flags.nulls() {
        Some(valid) => flags.values() & valid.inner(),
        None => flags.values().clone(),
    }
}

/// A position in a table of `size` slots (a power of two) from a short month's view: its bits
/// folded and mixed by MurmurHash3's finaliser, so that months land as if at random. (One
/// multiplication and the product's middle bits put 96 months in 12 slots: the year's last digits
/// never reached them.)
fn spread(view: u128, size: usize) -> usize {
    let mut mixed = (view as u64) ^ ((view >> 64) as u64).rotate_left(32);
    mixed ^= mixed >> 33;
    mixed = mixed.wrapping_mul(0xff51_afd7_ed55_8ccd);
    mixed ^= mixed >> 33;
    mixed = mixed.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    mixed ^= mixed >> 33;
    (mixed >> (64 - size.trailing_zeros())) as usize
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{LargeStringArray, StringArray, StringViewArray};

    use super::*;

    #[test]
    fn months_are_tallied_for_every_string_type() {
        let months = [
            Some("202404"),
            Some("202404"),
            None,
            None,
            Some("202404"),
            Some("202413"),
            Some("2024-04 (a month in words)"),
            Some("2024-04 (a month in words)"),
            // Its view is all zeros, as a NULL's is.
            Some(""),
            None,
        ];
        let unknown = BooleanArray::from(vec![
            true, false, true, true, false, false, true, true, false, false,
        ]);
        let impossible = BooleanArray::from(vec![
            false, true, false, true, true, true, false, true, true, false,
        ]);
        let arrays: [Arc<dyn Array>; 3] = [
            Arc::new(StringArray::from(months.to_vec())),
            Arc::new(LargeStringArray::from(months.to_vec())),
            Arc::new(StringViewArray::from(months.to_vec())),
        ];
        for array in arrays {
            let mut tallies = Tallies::new();
            tally_batch(array.as_ref(), [&unknown, &impossible], &mut tallies).expect("tallied");
            let tally = |month: Option<&str>| tallies[&month.map(str::to_owned)];
            let expected = |records, unknown_age, impossible_age| Tally {
                records,
                unknown_age,
                impossible_age,
            };
            assert_eq!(tallies.len(), 5, "{}", array.data_type());
            assert_eq!(tally(Some("202404")), expected(3, 1, 2));
            assert_eq!(tally(None), expected(3, 2, 1));
            assert_eq!(tally(Some("202413")), expected(1, 0, 1));
            assert_eq!(tally(Some("2024-04 (a month in words)")), expected(2, 2, 1));
            assert_eq!(tally(Some("")), expected(1, 0, 1));
        }
    }

    /// Rows in any order, months short and long, NULL months and flags: the tallies equal a
    /// plain count of each month's rows.
    #[test]
    fn tallies_equal_a_plain_count_whatever_the_row_order() {
        use rand::{Rng, SeedableRng};
        let choices = [
            Some("202404"),
            Some("202405"),
            Some("202304"),
            Some(""),
            Some("2024-04 (a month in words)"),
            Some("2024-05 (a month in words)"),
            Some("123456789012"),
            Some("1234567890123"),
            None,
        ];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(28);
        for rows in [1, 7, 100, 5000] {
            // Up to 300 distinct months, so the table grows more than once, and runs of one
            // month (a NULL run and an empty-text run among them), as files cut by month hold.
            let mut generated: Vec<Option<String>> = Vec::with_capacity(rows);
            for _ in 0..rows {
                let month = match (rng.random_range(0..5), generated.last()) {
                    (4, Some(previous)) => previous.clone(),
                    (0, _) => Some(format!("{}", rng.random_range(200_000..200_300))),
                    _ => choices[rng.random_range(0..choices.len())].map(str::to_owned),
                };
                generated.push(month);
            }
            let flag = |rng: &mut rand_chacha::ChaCha8Rng| match rng.random_range(0..3) {
                0 => None,
                1 => Some(false),
                _ => Some(true),
            };
            let unknown: BooleanArray = (0..rows).map(|_| flag(&mut rng)).collect();
            let impossible: BooleanArray = (0..rows).map(|_| flag(&mut rng)).collect();
            let mut expected = Tallies::new();
            for (row, month) in generated.iter().enumerate() {
                let tally = expected.entry(month.clone()).or_default();
                tally.records += 1;
                tally.unknown_age += u64::from(unknown.is_valid(row) && unknown.value(row));
                tally.impossible_age +=
                    u64::from(impossible.is_valid(row) && impossible.value(row));
            }
            let months: Vec<Option<&str>> = generated.iter().map(Option::as_deref).collect();
            let arrays: [Arc<dyn Array>; 3] = [
                Arc::new(StringArray::from(months.clone())),
                Arc::new(LargeStringArray::from(months.clone())),
                Arc::new(StringViewArray::from(months)),
            ];
            for array in arrays {
                let mut tallies = Tallies::new();
                tally_batch(array.as_ref(), [&unknown, &impossible], &mut tallies)
                    .expect("tallied");
                assert_eq!(tallies, expected, "{rows} rows of {}", array.data_type());
            }
        }
    }

    #[test]
    fn eight_years_of_months_spread_over_the_table_as_if_at_random() {
        for format in ["{y}{m:02}", "{y}-{m:02}"] {
            let slots: std::collections::BTreeSet<usize> = (2019..2027)
                .flat_map(|y| (1..=12).map(move |m| (y, m)))
                .map(|(y, m)| {
                    let month = format
                        .replace("{y}", &y.to_string())
                        .replace("{m:02}", &format!("{m:02}"));
                    spread(make_view(month.as_bytes(), 0, 0), 512)
                })
                .collect();
            // 96 keys thrown at random into 512 slots fill about 87.
            assert!(slots.len() >= 80, "{format}: {} slots", slots.len());
        }
    }

    #[test]
    fn a_month_of_another_type_is_an_error() {
        let months = datafusion::arrow::array::Int32Array::from(vec![202404]);
        let flags = BooleanArray::from(vec![false]);
        let error =
            tally_batch(&months, [&flags, &flags], &mut Tallies::new()).expect_err("refused");
        assert!(error.to_string().contains("Int32"), "{error}");
    }
}
