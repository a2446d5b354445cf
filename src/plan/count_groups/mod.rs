//! The shared scan's groupings by text columns with only counts, without DataFusion's general
//! hash aggregation.
//!
//! Every report query's core ([`super::cores`]) groups the rows it keeps by one to three text
//! columns (a month, a provider, an age band) and counts them: `count(*)`, `count(x)`, `count(*)
//! FILTER (WHERE ...)`. DataFusion's aggregation hashes every row's bytes and compares them with
//! the group's, column by column, for any aggregate; it was an eighth of the whole report's work.
//! Such a grouping has few distinct values per column, so [`CountGroupsExec`] gives each value a
//! number once per column (an Arrow view of a string of up to 12 bytes holds all of it, and is
//! looked up as one 16-byte integer), a group is its columns' numbers, and each count is an
//! addition per row it counts.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::exec_err;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeIterator, TreeNodeRecursion};
use datafusion::error::Result;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::ColumnarValue;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, InputOrderMode, PlanProperties,
};
use futures::StreamExt;

mod numbering;

pub(crate) use numbering::Recent;
use numbering::{GroupTable, Values, number_in};

/// The most columns a grouping may have here: a group's value numbers are one 128-bit key.
const MOST_COLUMNS: usize = 4;

/// `plan` with each aggregation [`CountGroupsExec`] can do in its place replaced by one.
pub(crate) fn counting_groups(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        let Some(aggregate) = node.downcast_ref::<AggregateExec>() else {
            return Ok(Transformed::no(node));
        };
        match CountGroupsExec::in_place_of(aggregate) {
            Some(counting) => Ok(Transformed::yes(
                Arc::new(counting) as Arc<dyn ExecutionPlan>
            )),
            None => Ok(Transformed::no(node)),
        }
    })
    .map(|transformed| transformed.data)
}

/// One count: of the rows where `argument` is not NULL (every row, without one) and `filter` is
/// TRUE (every row, without one).
#[derive(Debug, Clone)]
struct Count {
    argument: Option<Arc<dyn PhysicalExpr>>,
    filter: Option<Arc<dyn PhysicalExpr>>,
}

/// An aggregation of raw rows by text columns whose every aggregate is a count: its rows are
/// those of the `AggregateExec` it replaces, in the order their groups first appear.
#[derive(Debug)]
pub(crate) struct CountGroupsExec {
    groups: Vec<Arc<dyn PhysicalExpr>>,
    counts: Vec<Count>,
    input: Arc<dyn ExecutionPlan>,
    /// The aggregation's own: its schema, partitioning and equivalences.
    properties: Arc<PlanProperties>,
}

impl CountGroupsExec {
    /// The counting node for `aggregate`, if it reads raw rows (not other aggregations' states),
    /// groups them by one to four text columns (no grouping sets), in no particular order and
    /// with no limit, and has only plain counts, each one `Int64` column of its output.
    fn in_place_of(aggregate: &AggregateExec) -> Option<Self> {
        let raw_rows = matches!(
            aggregate.mode(),
            AggregateMode::Partial | AggregateMode::Single | AggregateMode::SinglePartitioned
        );
        let group_by = aggregate.group_expr();
        let plain = raw_rows
            && !group_by.has_grouping_set()
            && group_by.null_expr().is_empty()
            && (1..=MOST_COLUMNS).contains(&group_by.expr().len())
            && aggregate.limit_options().is_none()
            && aggregate.dynamic_expressions_produced().is_empty()
            && *aggregate.input_order_mode() == InputOrderMode::Linear
            && aggregate.properties().output_ordering().is_none();
        if !plain {
            return None;
        }
        let schema = aggregate.schema();
        let input_schema = aggregate.input().schema();
        let groups: Vec<_> = group_by.expr().iter().map(|(e, _)| Arc::clone(e)).collect();
        let width = groups.len() + aggregate.aggr_expr().len();
        if schema.fields().len() != width {
            return None;
        }
        for (index, group) in groups.iter().enumerate() {
            let data_type = group.data_type(&input_schema).ok()?;
            let text = matches!(
                data_type,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            );
            if !text || schema.field(index).data_type() != &data_type {
                return None;
            }
        }
        let mut counts = Vec::new();
        let aggregates = aggregate.aggr_expr().iter().zip(aggregate.filter_expr());
        for (index, (function, filter)) in aggregates.enumerate() {
            let mut arguments = function.expressions();
            let count = function.fun().name() == "count"
                && !function.is_distinct()
                && function.order_bys().is_empty()
                && arguments.len() <= 1
                && schema.field(groups.len() + index).data_type() == &DataType::Int64;
            if !count {
                return None;
            }
            counts.push(Count {
                argument: arguments.pop(),
                filter: filter.clone(),
            });
        }
        Some(Self {
            groups,
            counts,
            input: Arc::clone(aggregate.input()),
            properties: Arc::clone(aggregate.properties()),
        })
    }
}

impl DisplayAs for CountGroupsExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let groups: Vec<String> = self.groups.iter().map(ToString::to_string).collect();
        write!(
            f,
            "CountGroupsExec: by [{}], {} counts",
            groups.join(", "),
            self.counts.len()
        )
    }
}

impl ExecutionPlan for CountGroupsExec {
    fn name(&self) -> &str {
        "CountGroupsExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        visit: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        let counted = self
            .counts
            .iter()
            .flat_map(|count| count.argument.iter().chain(count.filter.iter()));
        self.groups.iter().chain(counted).apply_until_stop(visit)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let (Some(input), true) = (children.pop(), children.is_empty()) else {
            return exec_err!("CountGroupsExec takes one input");
        };
        Ok(Arc::new(Self {
            groups: self.groups.clone(),
            counts: self.counts.clone(),
            input,
            properties: Arc::clone(&self.properties),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let reservation = MemoryConsumer::new(format!("CountGroupsExec[{partition}]"))
            .register(context.memory_pool());
        let mut input = self.input.execute(partition, context)?;
        let schema = self.schema();
        let mut counter = Counter::new(self.groups.clone(), self.counts.clone(), reservation);
        let counted = futures::stream::once(async move {
            while let Some(batch) = input.next().await {
                counter.add(&batch?)?;
            }
            counter.finish(&schema)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema(),
            counted,
        )))
    }
}

/// One partition's groups and counts so far.
struct Counter {
    groups: Vec<Arc<dyn PhysicalExpr>>,
    counts: Vec<Count>,
    columns: Vec<Values>,
    table: GroupTable,
    /// Each group's value numbers, 32 bits per column, the last column lowest (a group of one
    /// column is its value's number).
    members: Vec<u128>,
    totals: Vec<Vec<i64>>,
    reservation: MemoryReservation,
}

impl Counter {
    fn new(
        groups: Vec<Arc<dyn PhysicalExpr>>,
        counts: Vec<Count>,
        reservation: MemoryReservation,
    ) -> Self {
        Self {
            columns: groups.iter().map(|_| Values::default()).collect(),
            totals: vec![Vec::new(); counts.len()],
            groups,
            counts,
            table: GroupTable::default(),
            members: Vec::new(),
            reservation,
        }
    }

    fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        let rows = batch.num_rows();
        let mut numbers = Vec::with_capacity(self.groups.len());
        for (group, values) in self.groups.iter().zip(&mut self.columns) {
            let column = group.evaluate(batch)?.into_array(rows)?;
            numbers.push(values.numbers(&column)?);
        }
        let group_of = self.group_of_rows(numbers);
        let groups = self.members.len();
        for (count, totals) in self.counts.iter().zip(&mut self.totals) {
            totals.resize(groups, 0);
            match counted_rows(count, batch)? {
                Counted::All => group_of.iter().for_each(|&g| totals[g as usize] += 1),
                Counted::None => {}
                Counted::Only(rows) => {
                    rows.set_indices()
                        .for_each(|row| totals[group_of[row] as usize] += 1);
                }
            }
        }
        let values: usize = self.columns.iter().map(Values::size).sum();
        let per_group = 48 + 8 * self.counts.len();
        self.reservation
            .try_resize(values + self.table.size() + groups * per_group)
    }

    /// Each row's group, by its columns' value numbers; a group is added where a row is the
    /// first with its values.
    fn group_of_rows(&mut self, mut numbers: Vec<Vec<u32>>) -> Vec<u32> {
        if numbers.len() == 1
            && let Some(only) = numbers.pop()
        {
            // The value numbers are already a group's: 0, 1, 2... as values first appear.
            while self.members.len() < self.columns[0].count() {
                self.members.push(self.members.len() as u128);
            }
            return only;
        }
        let values: Vec<usize> = self.columns.iter().map(Values::count).collect();
        self.table
            .group_of_rows(&numbers, &values, &mut self.members)
    }

    /// The groups and their counts, as one batch of `schema`.
    fn finish(self, schema: &SchemaRef) -> Result<RecordBatch> {
        let width = self.columns.len();
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for (position, values) in self.columns.iter().enumerate() {
            let numbers = self
                .members
                .iter()
                .map(|&key| number_in(key, width, position));
            arrays.push(values.array(schema.field(position).data_type(), numbers)?);
        }
        for mut totals in self.totals {
            totals.resize(self.members.len(), 0);
            arrays.push(Arc::new(Int64Array::from(totals)));
        }
        Ok(RecordBatch::try_new(Arc::clone(schema), arrays)?)
    }
}

/// The rows a count counts in one batch.
enum Counted {
    All,
    None,
    Only(BooleanBuffer),
}

fn counted_rows(count: &Count, batch: &RecordBatch) -> Result<Counted> {
    let rows = batch.num_rows();
    let mut counted = Counted::All;
    if let Some(argument) = &count.argument {
        counted = match argument.evaluate(batch)? {
            ColumnarValue::Scalar(value) if value.is_null() => Counted::None,
            ColumnarValue::Scalar(_) => Counted::All,
            ColumnarValue::Array(values) => match values.logical_nulls() {
                Some(nulls) => Counted::Only(nulls.into_inner()),
                None => Counted::All,
            },
        };
    }
    if let Some(filter) = &count.filter {
        let kept = match filter.evaluate(batch)?.into_array(rows)? {
            flags if flags.data_type() == &DataType::Boolean => true_rows(flags.as_boolean()),
            other => return exec_err!("a count's filter gave {}", other.data_type()),
        };
        counted = match counted {
            Counted::All => Counted::Only(kept),
            Counted::None => Counted::None,
            Counted::Only(rows) => Counted::Only(&rows & &kept),
        };
    }
    Ok(counted)
}

/// The rows where `flags` is TRUE (not NULL, not FALSE).
pub(crate) fn true_rows(flags: &BooleanArray) -> BooleanBuffer {
    match flags.nulls() {
        Some(valid) => flags.values() & valid.inner(),
        None => flags.values().clone(),
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int32Array, LargeStringArray, StringArray, StringViewArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::physical_plan::{collect, displayable};
    use datafusion::prelude::{SessionConfig, SessionContext};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// Values of up to 12 bytes (held whole in a view), longer ones, the empty string and NULL.
    const WORDS: [Option<&str>; 8] = [
        Some("202404"),
        Some("202405"),
        Some("RX1"),
        Some(""),
        Some("exactly12byt"),
        Some("thirteen byte"),
        Some("a much longer value, past any view"),
        None,
    ];

    /// `t(a, b, c, d, x, f)`: text columns of `text_type`, `a` and `b` drawn from `WORDS`, `c`
    /// and `d` from 3,000 values (a tenth of them past 12 bytes: the values outnumber the slots
    /// of `Recent`, and the groups of `c` and `d` outgrow the dense table midway), an integer `x`
    /// (NULL in a fifth of rows) and a flag `f` (NULL in a tenth), in batches of varied sizes.
    fn table(text_type: &DataType, seed: u64) -> MemTable {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", text_type.clone(), true),
            Field::new("b", text_type.clone(), true),
            Field::new("c", text_type.clone(), true),
            Field::new("d", text_type.clone(), true),
            Field::new("x", DataType::Int32, true),
            Field::new("f", DataType::Boolean, true),
        ]));
        let mut random = ChaCha8Rng::seed_from_u64(seed);
        let text = |words: Vec<Option<&str>>| -> ArrayRef {
            match text_type {
                DataType::Utf8View => Arc::new(StringViewArray::from(words)),
                DataType::LargeUtf8 => Arc::new(LargeStringArray::from(words)),
                _ => Arc::new(StringArray::from(words)),
            }
        };
        let mut batches = Vec::new();
        for rows in [0, 1, 7, 300, 2000, 9000] {
            let mut word = |spread: usize| {
                (0..rows)
                    .map(|_| WORDS[random.random_range(0..spread)])
                    .collect::<Vec<_>>()
            };
            let (a, b) = (word(WORDS.len()), word(3));
            let mut many = || -> Vec<String> {
                (0..rows)
                    .map(|_| match random.random_range(0..3000) {
                        n if n % 10 == 0 => format!("a value past twelve bytes {n}"),
                        n => format!("v{n}"),
                    })
                    .collect()
            };
            let (c, d) = (many(), many());
            let (c, d) = (
                c.iter().map(|value| Some(value.as_str())).collect(),
                d.iter().map(|value| Some(value.as_str())).collect(),
            );
            let x: Int32Array = (0..rows).map(|row| (row % 5 != 0).then_some(row)).collect();
            let f: datafusion::arrow::array::BooleanArray = (0..rows)
                .map(|row| (row % 10 != 3).then_some(row % 3 == 0))
                .collect();
            let columns = vec![
                text(a),
                text(b),
                text(c),
                text(d),
                Arc::new(x) as ArrayRef,
                Arc::new(f),
            ];
            batches.push(RecordBatch::try_new(Arc::clone(&schema), columns).expect("a batch"));
        }
        MemTable::try_new(schema, vec![batches]).expect("a table")
    }

    fn session(partitions: usize, table: MemTable) -> SessionContext {
        let config = SessionConfig::new()
            .with_target_partitions(partitions)
            .with_batch_size(512);
        let ctx = SessionContext::new_with_config(config);
        ctx.register_table("t", Arc::new(table))
            .expect("registered");
        ctx
    }

    /// The rows of `batches`, one line each, sorted.
    fn sorted_rows(batches: &[RecordBatch]) -> Vec<String> {
        let shown = pretty_format_batches(batches).expect("shown").to_string();
        let mut rows: Vec<String> = shown.lines().map(str::to_owned).collect();
        rows.sort();
        rows
    }

    /// `sql`'s result through DataFusion's aggregation and through the counting node, and
    /// whether the counting node was used.
    async fn both_ways(ctx: &SessionContext, sql: &str) -> (Vec<String>, Vec<String>, bool) {
        let physical = ctx
            .sql(sql)
            .await
            .expect("planned")
            .create_physical_plan()
            .await
            .expect("physical");
        let expected = collect(Arc::clone(&physical), ctx.task_ctx())
            .await
            .expect("ran");
        let counting = counting_groups(physical).expect("replaced");
        let used = displayable(counting.as_ref())
            .indent(false)
            .to_string()
            .contains("CountGroupsExec");
        let got = collect(counting, ctx.task_ctx()).await.expect("ran");
        (sorted_rows(&expected), sorted_rows(&got), used)
    }

    const COUNTING: [&str; 8] = [
        "SELECT a, count(*) AS n FROM t GROUP BY a",
        "SELECT a, b, count(*) AS n, count(x) AS xs FROM t GROUP BY a, b",
        "SELECT c, b, a, count(*) FILTER (WHERE f) AS flagged, count(x) FILTER (WHERE NOT f) AS m \
         FROM t GROUP BY c, b, a",
        "SELECT b, count(NULL) AS none, count(x) FILTER (WHERE x > 1000) AS big FROM t \
         WHERE a IS NOT NULL GROUP BY b",
        "SELECT upper(a) AS u, count(c) AS cs FROM t GROUP BY upper(a)",
        "SELECT DISTINCT a, b FROM t",
        "SELECT c, d, a, count(*) AS n FROM t GROUP BY c, d, a",
        "SELECT a, count(DISTINCT b) AS bs FROM t GROUP BY a",
    ];

    #[tokio::test]
    async fn counts_as_datafusion_aggregates_for_every_text_type_and_partitioning() {
        for text_type in [DataType::Utf8, DataType::LargeUtf8, DataType::Utf8View] {
            for (partitions, seed) in [(1, 7), (3, 11)] {
                let ctx = session(partitions, table(&text_type, seed));
                for sql in COUNTING {
                    let (expected, got, used) = both_ways(&ctx, sql).await;
                    assert!(used, "{text_type} {partitions} partitions: {sql}");
                    assert_eq!(got, expected, "{text_type} {partitions} partitions: {sql}");
                }
            }
        }
    }

    #[tokio::test]
    async fn leaves_other_aggregations_to_datafusion() {
        let ctx = session(1, table(&DataType::Utf8View, 3));
        for sql in [
            "SELECT a, sum(x) AS s FROM t GROUP BY a",
            "SELECT a, min(b) AS least, count(*) AS n FROM t GROUP BY a",
            "SELECT x, count(*) AS n FROM t GROUP BY x",
            "SELECT count(*) AS n FROM t",
            "SELECT a, b, c, d, f, count(*) AS n FROM t GROUP BY a, b, c, d, f",
            "SELECT a, count(*) AS n FROM t GROUP BY GROUPING SETS ((a), ())",
        ] {
            let (expected, got, used) = both_ways(&ctx, sql).await;
            assert!(!used, "{sql}");
            assert_eq!(got, expected, "{sql}");
        }
    }
}
