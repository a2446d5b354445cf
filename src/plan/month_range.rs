//! A filter's `sus_month(month) BETWEEN low AND high` with constant text bounds, written as
//! `sus_month_between(month, low, high)`: the same answer in one pass over the month column, where
//! the plain form builds a column of the valid months and compares each with both bounds. Every
//! report query filters every row on its month range. Only filters are rewritten, since there
//! no expression's name is seen; a range anywhere else is left as written.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{Between, Expr, Filter, LogicalPlan, ScalarUDF, lit};
use datafusion::optimizer::analyzer::AnalyzerRule;
use ebiq_udfs::{SusMonth, SusMonthBetween};

/// The analyzer rule; it runs after DataFusion's type coercion.
#[derive(Debug, Default)]
pub struct MonthRange;

impl AnalyzerRule for MonthRange {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        let between = Arc::new(ScalarUDF::new_from_impl(SusMonthBetween::new()));
        plan.transform_up_with_subqueries(|plan| match plan {
            LogicalPlan::Filter(filter) => {
                let predicate = filter
                    .predicate
                    .clone()
                    .transform_up(|expr| Ok(as_one_call(expr, &between)))?;
                if !predicate.transformed {
                    return Ok(Transformed::no(LogicalPlan::Filter(filter)));
                }
                let filter = Filter::try_new(predicate.data, filter.input)?;
                Ok(Transformed::yes(LogicalPlan::Filter(filter)))
            }
            other => Ok(Transformed::no(other)),
        })
        .map(|rewritten| rewritten.data)
    }

    fn name(&self) -> &str {
        "ebiq_month_range"
    }
}

fn as_one_call(expr: Expr, between: &Arc<ScalarUDF>) -> Transformed<Expr> {
    let Expr::Between(Between {
        expr: tested,
        negated: false,
        low,
        high,
    }) = &expr
    else {
        return Transformed::no(expr);
    };
    let Expr::ScalarFunction(call) = tested.as_ref() else {
        return Transformed::no(expr);
    };
    let is_sus_month = call.func.inner().downcast_ref::<SusMonth>().is_some();
    let (true, [month], Some(low), Some(high)) = (
        is_sus_month,
        call.args.as_slice(),
        text_constant(low),
        text_constant(high),
    ) else {
        return Transformed::no(expr);
    };
    let args = vec![month.clone(), lit(low), lit(high)];
    Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(
        Arc::clone(between),
        args,
    )))
}

/// A bound that is text and not NULL, as a literal or cast from one (type coercion casts a bound
/// to the month's own string type).
fn text_constant(expr: &Expr) -> Option<ScalarValue> {
    match expr {
        Expr::Literal(
            value @ (ScalarValue::Utf8(Some(_))
            | ScalarValue::LargeUtf8(Some(_))
            | ScalarValue::Utf8View(Some(_))),
            _,
        ) => Some(value.clone()),
        Expr::Cast(cast) if is_text(cast.field.data_type()) => text_constant(&cast.expr),
        Expr::TryCast(cast) if is_text(cast.field.data_type()) => text_constant(&cast.expr),
        _ => None,
    }
}

fn is_text(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::AsArray;
    use datafusion::prelude::SessionContext;

    use super::*;

    /// A session with the rule functions and this rule, as ebiq's sessions have them.
    fn session() -> SessionContext {
        let ctx = SessionContext::new();
        ctx.register_udf(ScalarUDF::new_from_impl(SusMonth::new()));
        ctx.register_udf(ScalarUDF::new_from_impl(SusMonthBetween::new()));
        ctx.add_analyzer_rule(Arc::new(MonthRange));
        ctx
    }

    async fn plan_and_answer(ctx: &SessionContext, sql: &str) -> Result<(String, Vec<String>)> {
        let frame = ctx.sql(sql).await?;
        let plan = frame
            .clone()
            .into_optimized_plan()?
            .display_indent()
            .to_string();
        let mut answer = Vec::new();
        for batch in frame.collect().await? {
            let column = batch.column(0).as_string_view_opt().map(|c| {
                c.iter()
                    .map(|m| m.unwrap_or("NULL").to_owned())
                    .collect::<Vec<_>>()
            });
            answer.extend(column.unwrap_or_default());
        }
        Ok((plan, answer))
    }

    const MONTHS: &str = "(VALUES (arrow_cast('202403', 'Utf8View')), ('202404'), ('202413'), \
                          ('2024041'), ('202412'), (NULL)) AS t(m)";

    #[tokio::test]
    async fn a_filters_month_range_becomes_one_call_with_the_same_rows() -> Result<()> {
        let ctx = session();
        let sql = format!(
            "SELECT m FROM {MONTHS} WHERE sus_month(m) BETWEEN '202404' AND '202412' ORDER BY m"
        );
        let (plan, answer) = plan_and_answer(&ctx, &sql).await?;
        assert!(plan.contains("sus_month_between("), "{plan}");
        assert!(!plan.contains("sus_month("), "{plan}");
        assert_eq!(answer, ["202404", "202412"]);
        Ok(())
    }

    #[tokio::test]
    async fn ranges_it_cannot_serve_are_left_as_written() -> Result<()> {
        let ctx = session();
        for range in [
            "sus_month(m) NOT BETWEEN '202404' AND '202412'",
            "sus_month(m) BETWEEN m AND '202412'",
            "sus_month(m) BETWEEN NULL AND '202412'",
            "m BETWEEN '202404' AND '202412'",
        ] {
            let sql = format!("SELECT m FROM {MONTHS} WHERE {range} ORDER BY m");
            let (plan, _) = plan_and_answer(&ctx, &sql).await?;
            assert!(!plan.contains("sus_month_between("), "{range}: {plan}");
        }
        // Outside a filter the range keeps its name as a column.
        let sql =
            format!("SELECT sus_month(m) BETWEEN '202404' AND '202412' AS within FROM {MONTHS}");
        let (plan, _) = plan_and_answer(&ctx, &sql).await?;
        assert!(!plan.contains("sus_month_between("), "{plan}");
        Ok(())
    }
}
