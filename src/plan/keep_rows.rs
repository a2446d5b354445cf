//! The shared scan's filter without DataFusion's copy of the rows it keeps.
//!
//! `FilterExec` copies every row it keeps into batches of the session's batch size. That pays
//! where a filter keeps few rows, but the shared scan's filter ([`super::one_scan`]) is the month
//! range every report query shares, which keeps nearly every row: it copied every string of every
//! column the queries read (a fifteenth of the whole report's work), only for each consumer to
//! filter again. [`KeepRowsExec`] passes on a batch whose rows all meet the condition as it is,
//! and gathers the rows it keeps of the others as `FilterExec` does (a report of one query has
//! all its conditions in the scan, which then keeps few rows of each batch).

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::compute::BatchCoalescer;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::cast::as_boolean_array;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{exec_err, internal_err};
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::projection::ProjectionRef;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::StreamExt;

/// `plan` with each `FilterExec` (that has no row limit) replaced by a [`KeepRowsExec`].
pub(crate) fn without_filter_copies(
    plan: Arc<dyn ExecutionPlan>,
) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        let Some(filter) = node.downcast_ref::<FilterExec>() else {
            return Ok(Transformed::no(node));
        };
        if filter.fetch().is_some() {
            return Ok(Transformed::no(node));
        }
        Ok(Transformed::yes(Arc::new(KeepRowsExec {
            predicate: Arc::clone(filter.predicate()),
            projection: filter.projection().clone(),
            input: Arc::clone(filter.input()),
            properties: Arc::clone(filter.properties()),
        }) as Arc<dyn ExecutionPlan>))
    })
    .map(|transformed| transformed.data)
}

/// The rows of `input` that meet `predicate`, with `projection`'s columns, batch by batch.
struct KeepRowsExec {
    predicate: Arc<dyn PhysicalExpr>,
    projection: Option<ProjectionRef>,
    input: Arc<dyn ExecutionPlan>,
    /// The filter's own: the same schema, partitioning and order.
    properties: Arc<PlanProperties>,
}

impl fmt::Debug for KeepRowsExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeepRowsExec")
            .field("predicate", &self.predicate)
            .finish_non_exhaustive()
    }
}

impl DisplayAs for KeepRowsExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeepRowsExec: {}", self.predicate)
    }
}

impl ExecutionPlan for KeepRowsExec {
    fn name(&self) -> &str {
        "KeepRowsExec"
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
        visit(&self.predicate)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let (Some(input), true) = (children.pop(), children.is_empty()) else {
            return exec_err!("KeepRowsExec takes one input");
        };
        Ok(Arc::new(Self {
            predicate: Arc::clone(&self.predicate),
            projection: self.projection.clone(),
            input,
            properties: Arc::clone(&self.properties),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let batch_size = context.session_config().batch_size();
        let keeping = Keeping {
            input: self.input.execute(partition, context)?,
            predicate: Arc::clone(&self.predicate),
            projection: self.projection.clone(),
            // A batch past half the batch size goes on as it is when nothing is gathered.
            gathered: BatchCoalescer::new(self.schema(), batch_size)
                .with_biggest_coalesce_batch_size(Some(batch_size / 2)),
            ended: false,
        };
        let kept = futures::stream::unfold(keeping, |mut keeping| async move {
            let next = keeping.next().await?;
            Some((next, keeping))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema(), kept)))
    }
}

/// One partition's filtering: the batches whose rows all meet the predicate pass as they are;
/// the rows kept from the others are gathered into batches of the session's size.
struct Keeping {
    input: SendableRecordBatchStream,
    predicate: Arc<dyn PhysicalExpr>,
    projection: Option<ProjectionRef>,
    gathered: BatchCoalescer,
    ended: bool,
}

impl Keeping {
    async fn next(&mut self) -> Option<Result<RecordBatch>> {
        loop {
            if let Some(batch) = self.gathered.next_completed_batch() {
                return Some(Ok(batch));
            }
            if self.ended {
                return None;
            }
            let pushed = match self.input.next().await {
                Some(Ok(batch)) => self.push(&batch),
                Some(Err(error)) => Err(error),
                None => {
                    self.ended = true;
                    self.gathered.finish_buffered_batch().map_err(Into::into)
                }
            };
            if let Err(error) = pushed {
                self.ended = true;
                return Some(Err(error));
            }
        }
    }

    /// Passes on `batch`'s rows that meet the predicate (TRUE, not NULL), with the projection's
    /// columns, to `gathered`.
    fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        let mask = self
            .predicate
            .evaluate(batch)?
            .into_array(batch.num_rows())?;
        let mask = as_boolean_array(&mask)?;
        if mask.len() != batch.num_rows() {
            return internal_err!(
                "a filter gave {} answers for {} rows",
                mask.len(),
                batch.num_rows()
            );
        }
        let kept = mask.true_count();
        if kept == 0 {
            return Ok(());
        }
        let batch = match &self.projection {
            Some(columns) => batch.project(columns)?,
            None => batch.clone(),
        };
        // Under the filter's schema, whatever the input batch carried.
        let rows = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        let batch = RecordBatch::try_new_with_options(
            self.gathered.schema(),
            batch.columns().to_vec(),
            &rows,
        )?;
        if kept < batch.num_rows() {
            return Ok(self.gathered.push_batch_with_filter(batch, mask)?);
        }
        if self.gathered.get_buffered_rows() > 0 {
            self.gathered.finish_buffered_batch()?;
        }
        Ok(self.gathered.push_batch(batch)?)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::array::{ArrayRef, Int32Array, StringViewArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::physical_plan::{collect, displayable};
    use datafusion::prelude::{SessionConfig, SessionContext};

    use super::*;

    /// `t(a, s)` in three batches: one whose rows all meet `a > 2`, one with none, one with two
    /// that do and a NULL `a` (which a filter does not keep).
    async fn session() -> SessionContext {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("s", DataType::Utf8View, true),
        ]));
        let batch = |a: Vec<Option<i32>>, s: Vec<&str>| {
            let a: ArrayRef = Arc::new(Int32Array::from(a));
            let s: ArrayRef = Arc::new(StringViewArray::from(s));
            RecordBatch::try_new(Arc::clone(&schema), vec![a, s]).expect("a batch")
        };
        let batches = vec![
            batch(
                vec![Some(3), Some(4)],
                vec!["kept whole", "a string longer than twelve"],
            ),
            batch(vec![Some(1), Some(2)], vec!["none", "kept"]),
            batch(vec![Some(5), None, Some(9)], vec!["five", "null", "nine"]),
        ];
        // Batches of three rows (one of two rows is past half of that), in one partition.
        let config = SessionConfig::new()
            .with_batch_size(3)
            .with_target_partitions(1);
        let ctx = SessionContext::new_with_config(config);
        let table = MemTable::try_new(schema, vec![batches]).expect("a table");
        ctx.register_table("t", Arc::new(table))
            .expect("registered");
        ctx
    }

    #[tokio::test]
    async fn keeps_the_rows_a_filter_keeps() {
        let ctx = session().await;
        for sql in [
            "SELECT s, a FROM t WHERE a > 2",
            "SELECT s FROM t WHERE a > 2 AND s <> 'nine'",
            "SELECT count(*) AS n FROM t WHERE a IS NULL OR a < 2",
        ] {
            let plan = ctx.sql(sql).await.expect("planned");
            let physical = plan.create_physical_plan().await.expect("physical");
            let expected = collect(Arc::clone(&physical), ctx.task_ctx())
                .await
                .expect("ran");
            let replaced = without_filter_copies(physical).expect("replaced");
            let shown = displayable(replaced.as_ref()).indent(false).to_string();
            assert!(shown.contains("KeepRowsExec"), "{shown}");
            assert!(!shown.contains("FilterExec"), "{shown}");
            let batches = collect(replaced, ctx.task_ctx()).await.expect("ran");
            assert_eq!(
                pretty_format_batches(&batches)
                    .expect("printed")
                    .to_string(),
                pretty_format_batches(&expected)
                    .expect("printed")
                    .to_string(),
                "{sql}"
            );
        }
    }

    #[tokio::test]
    async fn a_batch_whose_rows_all_meet_the_condition_passes_as_it_is() {
        let ctx = session().await;
        let physical = ctx
            .sql("SELECT a, s FROM t WHERE a > 2")
            .await
            .expect("planned")
            .create_physical_plan()
            .await
            .expect("physical");
        let read = collect(scan_under(&physical), ctx.task_ctx())
            .await
            .expect("read");
        let long_strings = |batch: &RecordBatch| {
            batch
                .column(1)
                .as_string_view()
                .data_buffers()
                .first()
                .map(|b| b.as_ptr())
        };
        let whole = read.iter().find_map(long_strings).expect("a long string");
        let replaced = without_filter_copies(physical).expect("replaced");
        let batches = collect(replaced, ctx.task_ctx()).await.expect("ran");
        let mut sizes: Vec<usize> = batches.iter().map(RecordBatch::num_rows).collect();
        sizes.sort_unstable();
        // The mixed batch's two rows are gathered on their own; the batch with none gives none.
        assert_eq!(sizes, [2, 2]);
        assert!(
            batches
                .iter()
                .filter_map(long_strings)
                .any(|kept| kept == whole),
            "the whole batch's strings were copied"
        );
    }

    /// The plan under the filter: what it reads.
    fn scan_under(plan: &Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
        match plan.downcast_ref::<FilterExec>() {
            Some(filter) => Arc::clone(filter.input()),
            None => scan_under(plan.children()[0]),
        }
    }
}
