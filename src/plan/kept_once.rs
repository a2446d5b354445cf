//! The rows several stems keep of the shared scan, kept once.
//!
//! Most report queries keep the rows the rule flags (`flag IS NOT NULL`), or those its inclusion
//! holds for, before anything else. Each stem's `FilterExec` over the [fan-out](super::fan_out)
//! tested every row of every batch and copied the rows it kept: eight filters of every row for
//! the whole report. Where two or more stems' filters over the fan-out have such a condition in
//! common, the fan-out keeps those rows once ([`Keep`]), in full batches, and sends each of those
//! stems only them; the rest of each filter (`attendance_status IN ('5', '6')`) stays in its stem.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::Result;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{Column, IsNotNullExpr};
use datafusion::physical_expr::utils::{conjunction_opt, split_conjunction};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};
use datafusion::physical_plan::projection::ProjectionExec;

use super::fan_out::{FanOut, FanOutExec, Keep};

/// Has `fan_out` keep the rows of each condition that two or more of `plans`' filters over it
/// share (each plan a stem's, over `fan_out`'s table), and takes it out of those filters.
pub(crate) fn keep_rows_once(
    mut plans: Vec<&mut Arc<dyn ExecutionPlan>>,
    fan_out: &FanOut,
) -> Result<()> {
    let found: Vec<Option<Filtered>> = plans
        .iter()
        .map(|plan| filtered(plan, fan_out))
        .collect::<Result<_>>()?;
    let stems_keeping = |keep: Keep| {
        found
            .iter()
            .flatten()
            .filter(|filtered| filtered.keeps.iter().any(|(kept, _)| *kept == keep))
            .count()
    };
    for (plan, filtered) in plans.iter_mut().zip(&found) {
        let Some(filtered) = filtered else {
            continue;
        };
        // Of the conditions this filter could leave to the fan-out, the one most stems share.
        let shared = filtered
            .keeps
            .iter()
            .map(|&(keep, conjunct)| (stems_keeping(keep), keep, conjunct))
            .filter(|(stems, _, _)| *stems >= 2)
            .max_by_key(|(stems, _, _)| *stems);
        if let Some((_, keep, conjunct)) = shared {
            fan_out.keep_rows(filtered.consumer, keep);
            **plan = without_condition(Arc::clone(plan), conjunct)?;
        }
    }
    Ok(())
}

/// A stem's filter over its fan-out consumer, with the conditions of it the fan-out could keep,
/// each with its place among the filter's conjuncts.
struct Filtered {
    consumer: usize,
    keeps: Vec<(Keep, usize)>,
}

/// The filter right over `plan`'s fan-out consumer, if it has one.
fn filtered(plan: &Arc<dyn ExecutionPlan>, fan_out: &FanOut) -> Result<Option<Filtered>> {
    let mut found = None;
    plan.apply(|node| {
        let Some((filter, consumer)) = filter_over_fan_out(node) else {
            return Ok(TreeNodeRecursion::Continue);
        };
        let Some(columns) = fan_out.columns_of(consumer.consumer()) else {
            return Ok(TreeNodeRecursion::Stop);
        };
        let schema = filter.input().schema();
        let table_column = |column: &Column| columns.get(column.index()).copied();
        let mut keeps = Vec::new();
        for (place, conjunct) in split_conjunction(filter.predicate())
            .into_iter()
            .enumerate()
        {
            let keep = if let Some(test) = conjunct.downcast_ref::<IsNotNullExpr>() {
                test.arg()
                    .downcast_ref::<Column>()
                    .and_then(table_column)
                    .map(Keep::NotNull)
            } else if let Some(column) = conjunct.downcast_ref::<Column>() {
                let boolean = schema.field(column.index()).data_type() == &DataType::Boolean;
                table_column(column).filter(|_| boolean).map(Keep::True)
            } else {
                None
            };
            keeps.extend(keep.map(|keep| (keep, place)));
        }
        found = Some(Filtered {
            consumer: consumer.consumer(),
            keeps,
        });
        Ok(TreeNodeRecursion::Stop)
    })?;
    Ok(found)
}

/// `node` as a filter (with no row limit) right over a fan-out consumer (through the
/// `CooperativeExec` DataFusion puts over a leaf), and the consumer.
fn filter_over_fan_out(node: &Arc<dyn ExecutionPlan>) -> Option<(&FilterExec, &FanOutExec)> {
    let filter = node.downcast_ref::<FilterExec>()?;
    if filter.fetch().is_some() {
        return None;
    }
    let mut input = filter.input();
    if let Some(cooperative) = input.downcast_ref::<CooperativeExec>() {
        input = cooperative.input();
    }
    Some((filter, input.downcast_ref::<FanOutExec>()?))
}

/// `plan` with its filter over the fan-out without its conjunct `place`: with the others, or a
/// projection to the filter's columns if it had no other.
fn without_condition(plan: Arc<dyn ExecutionPlan>, place: usize) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_down(|node| {
        let Some((filter, _)) = filter_over_fan_out(&node) else {
            return Ok(Transformed::no(node));
        };
        let rest: Vec<Arc<dyn PhysicalExpr>> = split_conjunction(filter.predicate())
            .into_iter()
            .enumerate()
            .filter(|(at, _)| *at != place)
            .map(|(_, conjunct)| Arc::clone(conjunct))
            .collect();
        let input = Arc::clone(filter.input());
        let projection = filter.projection().as_ref().map(|columns| columns.to_vec());
        let replaced: Arc<dyn ExecutionPlan> = match (conjunction_opt(rest), projection) {
            (Some(predicate), projection) => Arc::new(
                FilterExecBuilder::new(predicate, input)
                    .apply_projection(projection)?
                    .with_batch_size(filter.batch_size())
                    .build()?,
            ),
            (None, Some(columns)) => {
                let schema = input.schema();
                let expressions = columns.into_iter().map(|index| {
                    let name = schema.field(index).name().clone();
                    let column: Arc<dyn PhysicalExpr> = Arc::new(Column::new(&name, index));
                    (column, name)
                });
                Arc::new(ProjectionExec::try_new(expressions, input)?)
            }
            (None, None) => input,
        };
        Ok(Transformed::new(replaced, true, TreeNodeRecursion::Stop))
    })
    .map(|transformed| transformed.data)
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{ArrayRef, BooleanArray, Int32Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::physical_plan::{collect, displayable};
    use datafusion::prelude::{SessionConfig, SessionContext};

    use super::*;

    /// Over `{}`: the rows whose `f` is not NULL (three stems), whose `b` is true (two), both,
    /// another condition, and every row.
    const QUERIES: [&str; 6] = [
        "SELECT count(*) AS n, sum(a) AS s FROM {} WHERE f IS NOT NULL",
        "SELECT a % 4 AS k, count(*) AS n FROM {} WHERE f IS NOT NULL AND a > 40 GROUP BY 1 ORDER BY 1",
        "SELECT count(*) AS n, min(f) AS first FROM {} WHERE b",
        "SELECT max(a) AS top FROM {} WHERE b AND f IS NOT NULL",
        "SELECT count(*) AS n FROM {} WHERE a < 10",
        "SELECT count(*) AS n FROM {}",
    ];

    /// `t(a, f, b)`, 100 rows in four batches (`f` NULL on every third row, `b` on every fifth),
    /// and a fan-out of it as `fanned`, in a session of one partition and batches of 8 rows (so
    /// that the rows kept fill batches across the scan's).
    fn session() -> (SessionContext, Arc<FanOut>) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int32, false),
            Field::new("f", DataType::Utf8, true),
            Field::new("b", DataType::Boolean, true),
        ]));
        let batches = (0..4)
            .map(|quarter| {
                let rows = (quarter * 25 + 1)..=(quarter * 25 + 25);
                let a: ArrayRef = Arc::new(Int32Array::from_iter_values(rows.clone()));
                let f: ArrayRef = Arc::new(StringArray::from_iter(
                    rows.clone().map(|a| (a % 3 != 0).then(|| format!("x{a}"))),
                ));
                let b: ArrayRef = Arc::new(BooleanArray::from_iter(
                    rows.map(|a| (a % 5 != 0).then_some(a % 2 == 0)),
                ));
                RecordBatch::try_new(Arc::clone(&schema), vec![a, f, b]).expect("a batch")
            })
            .collect();
        let config = SessionConfig::new()
            .with_target_partitions(1)
            .with_batch_size(8);
        let ctx = SessionContext::new_with_config(config);
        let table = MemTable::try_new(Arc::clone(&schema), vec![batches]).expect("a table");
        ctx.register_table("t", Arc::new(table))
            .expect("registered");
        let fan_out = FanOut::new(schema);
        ctx.register_table("fanned", fan_out.table())
            .expect("registered");
        (ctx, fan_out)
    }

    async fn physical(ctx: &SessionContext, sql: &str) -> Arc<dyn ExecutionPlan> {
        ctx.sql(sql)
            .await
            .expect("planned")
            .create_physical_plan()
            .await
            .expect("planned")
    }

    fn printed(batches: &[RecordBatch]) -> String {
        pretty_format_batches(batches).expect("printed").to_string()
    }

    #[tokio::test]
    async fn stems_that_keep_the_same_rows_have_them_kept_once_with_the_same_answers() {
        let (ctx, fan_out) = session();
        let mut expected = Vec::new();
        let mut plans = Vec::new();
        for query in QUERIES {
            let answer = ctx
                .sql(&query.replace("{}", "t"))
                .await
                .expect("planned")
                .collect()
                .await
                .expect("ran");
            expected.push(printed(&answer));
            plans.push(physical(&ctx, &query.replace("{}", "fanned")).await);
        }
        keep_rows_once(plans.iter_mut().collect(), &fan_out).expect("rewritten");
        let shown: Vec<String> = plans
            .iter()
            .map(|plan| displayable(plan.as_ref()).indent(true).to_string())
            .collect();
        // The filters that only kept rows are gone; the rest of one stays; `b AND f IS NOT NULL`
        // keeps `f`'s rows, which more stems keep, and tests `b` itself.
        assert!(!shown[0].contains("FilterExec"), "{}", shown[0]);
        assert!(shown[1].contains("FilterExec: a@0 > 40"), "{}", shown[1]);
        assert!(!shown[2].contains("FilterExec"), "{}", shown[2]);
        assert!(shown[3].contains("FilterExec: b@"), "{}", shown[3]);
        assert!(!shown[3].contains("IS NOT NULL"), "{}", shown[3]);
        assert!(shown[4].contains("FilterExec: a@0 < 10"), "{}", shown[4]);

        let columns: Vec<String> = fan_out
            .columns_read()
            .into_iter()
            .map(|column| ["a", "f", "b"][column].to_owned())
            .collect();
        let scan = physical(&ctx, &format!("SELECT {} FROM t", columns.join(", "))).await;
        let task = ctx.task_ctx();
        let answers = plans
            .into_iter()
            .map(|plan| collect(plan, Arc::clone(&task)));
        let (fed, answers) = futures::join!(
            fan_out.feed(scan, Arc::clone(&task)),
            futures::future::join_all(answers)
        );
        fed.expect("fed");
        for ((query, expected), answer) in QUERIES.iter().zip(expected).zip(answers) {
            let answer = answer.expect("ran");
            assert_eq!(printed(&answer), expected, "{query}");
        }
    }

    #[tokio::test]
    async fn a_condition_only_one_stem_has_stays_in_its_filter() {
        let (ctx, fan_out) = session();
        let mut plans = [
            physical(&ctx, &QUERIES[0].replace("{}", "fanned")).await,
            physical(&ctx, &QUERIES[2].replace("{}", "fanned")).await,
        ];
        let before: Vec<String> = plans
            .iter()
            .map(|plan| displayable(plan.as_ref()).indent(true).to_string())
            .collect();
        keep_rows_once(plans.iter_mut().collect(), &fan_out).expect("rewritten");
        for (plan, before) in plans.iter().zip(before) {
            assert_eq!(displayable(plan.as_ref()).indent(true).to_string(), before);
        }
    }
}
