//! The parts of a query that read one table and nothing else, so that several queries' parts can
//! share one scan of it ([`super::one_scan`]).
//!
//! A *stem* is a node of a logical plan, and everything under it, that is a chain of filters,
//! projections, aggregations, aliases and `DISTINCT` down to a scan of the table: it reads that
//! table alone, so it can run before the query does, beside other stems, and the query can read
//! its result instead. A stem is taken as high up as the chain goes (a whole query, when it is
//! one such chain), and only where it narrows the table (filters or groups its rows): a stem that
//! kept every row would copy the table. A sort or a limit ends the chain, so that a stem's result
//! needs no order; so does anything with a second input (a join, a union, a subquery in an
//! expression), a reference to an outer query, or a volatile function.

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::Result;
use std::sync::Arc;

use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{Distinct, Expr, Filter, LogicalPlan};

/// The stems of every scan of `table` in `plan` (its subqueries' included), each once, in the
/// order they are met; `None` when some scan of `table` is in no stem (the query then reads the
/// table itself) or `plan` has no scan of it.
pub(crate) fn stems_of(plan: &LogicalPlan, table: &str) -> Result<Option<Vec<LogicalPlan>>> {
    let mut stems: Vec<LogicalPlan> = Vec::new();
    let mut covered = 0;
    plan.apply_with_subqueries(|node| {
        // `FROM f AS x JOIN f AS y`: the stem is `f`, under each reference's own alias.
        let renames_a_stem = matches!(node, LogicalPlan::SubqueryAlias(alias)
            if matches!(alias.input.as_ref(), LogicalPlan::SubqueryAlias(_))
                && is_stem(&alias.input, table));
        if !renames_a_stem && is_stem(node, table) {
            covered += 1;
            if !stems.contains(node) {
                stems.push(node.clone());
            }
            return Ok(TreeNodeRecursion::Jump);
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    let scans = scans_of(plan, table)?;
    Ok((scans > 0 && scans == covered).then_some(stems))
}

/// How many times `plan` scans `table`, in its subqueries too.
fn scans_of(plan: &LogicalPlan, table: &str) -> Result<usize> {
    let mut scans = 0;
    plan.apply_with_subqueries(|node| {
        if is_scan_of(node, table) {
            scans += 1;
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(scans)
}

/// Whether `node` reads `table` whole: a plain scan of it, or the view of that name as the SQL
/// planner puts it in a plan (an alias over projections of one plain scan: ebiq registers `opa`
/// as such a view, with its columns named in lower case).
pub(crate) fn is_scan_of(node: &LogicalPlan, table: &str) -> bool {
    match node {
        LogicalPlan::TableScan(scan) => scan.table_name.table() == table && is_plain(node),
        LogicalPlan::SubqueryAlias(alias) => {
            alias.alias.table() == table && is_projected_scan(&alias.input)
        }
        _ => false,
    }
}

/// Whether `plan` is projections of a plain scan, calling nothing volatile.
fn is_projected_scan(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::TableScan(_) => is_plain(plan),
        LogicalPlan::Projection(projection) => {
            projection.expr.iter().all(|expr| !expr.is_volatile())
                && is_projected_scan(&projection.input)
        }
        _ => false,
    }
}

/// A scan with no filter or limit of its own (as the SQL planner makes them).
fn is_plain(scan: &LogicalPlan) -> bool {
    matches!(scan, LogicalPlan::TableScan(scan) if scan.filters.is_empty() && scan.fetch.is_none())
}

/// Whether `node` is a chain of the nodes a stem may hold down to a plain scan of `table`, and
/// narrows it somewhere.
fn is_stem(node: &LogicalPlan, table: &str) -> bool {
    let mut narrows = false;
    let mut at = node;
    loop {
        if is_scan_of(at, table) {
            return narrows;
        }
        match at {
            LogicalPlan::Filter(_) | LogicalPlan::Aggregate(_) => narrows = true,
            LogicalPlan::Distinct(Distinct::All(_)) => narrows = true,
            LogicalPlan::Projection(_) | LogicalPlan::SubqueryAlias(_) => {}
            _ => return false,
        }
        if !expressions_stand_alone(at) {
            return false;
        }
        let inputs = at.inputs();
        let [input] = inputs.as_slice() else {
            return false;
        };
        at = input;
    }
}

/// Whether `node`'s expressions read only its input: no subquery, no outer query's column, and
/// no volatile function (which each reference to a shared result would otherwise see once).
fn expressions_stand_alone(node: &LogicalPlan) -> bool {
    let mut alone = true;
    let _ = node.apply_expressions(|expr| {
        alone &= !expr.is_volatile()
            && !expr
                .exists(|e| {
                    Ok(matches!(
                        e,
                        Expr::ScalarSubquery(_)
                            | Expr::InSubquery(_)
                            | Expr::Exists(_)
                            | Expr::SetComparison(_)
                            | Expr::OuterReferenceColumn(..)
                    ))
                })
                .unwrap_or(true);
        Ok(if alone {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    alone
}

/// The conditions of the filter right over `stem`'s scan of `table`, each `AND`ed part on its own; none if
/// the scan has no filter right over it.
pub(crate) fn scan_conditions(stem: &LogicalPlan, table: &str) -> Vec<Expr> {
    let mut at = stem;
    loop {
        let inputs = at.inputs();
        let [input] = inputs.as_slice() else {
            return Vec::new();
        };
        if is_scan_of(input, table) {
            return match at {
                LogicalPlan::Filter(filter) => split_conjunction(&filter.predicate)
                    .into_iter()
                    .cloned()
                    .collect(),
                _ => Vec::new(),
            };
        }
        at = input;
    }
}

/// `stem` without those of its scan conditions ([`scan_conditions`]) that are in `met`: a stem
/// fed only rows that meet them need not test them again. Its columns are as before.
pub(crate) fn without_conditions(
    stem: &LogicalPlan,
    table: &str,
    met: &[Expr],
) -> Result<LogicalPlan> {
    if let LogicalPlan::Filter(filter) = stem
        && is_scan_of(&filter.input, table)
    {
        let kept = split_conjunction(&filter.predicate)
            .into_iter()
            .filter(|condition| !met.contains(condition))
            .cloned();
        return Ok(match conjunction(kept) {
            Some(predicate) => {
                LogicalPlan::Filter(Filter::try_new(predicate, Arc::clone(&filter.input))?)
            }
            None => filter.input.as_ref().clone(),
        });
    }
    let inputs = stem.inputs();
    let [input] = inputs.as_slice() else {
        return Ok(stem.clone());
    };
    let input = without_conditions(input, table, met)?;
    stem.with_new_exprs(stem.expressions(), vec![input])
}

/// `plan` with each of `stems` (wherever it occurs, in subqueries too) replaced by its
/// replacement.
pub(crate) fn replace_stems(
    plan: LogicalPlan,
    replacements: &[(LogicalPlan, LogicalPlan)],
) -> Result<LogicalPlan> {
    Ok(plan
        .transform_down_with_subqueries(|node| {
            Ok(match replacements.iter().find(|(stem, _)| *stem == node) {
                Some((_, replacement)) => {
                    Transformed::new(replacement.clone(), true, TreeNodeRecursion::Jump)
                }
                None => Transformed::no(node),
            })
        })?
        .data)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::Int32Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    use super::*;

    async fn planned(sql: &str) -> LogicalPlan {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int32, false),
            Field::new("b", DataType::Int32, false),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int32Array::from_iter_values(1..=10)),
                Arc::new(Int32Array::from_iter_values(11..=20)),
            ],
        )
        .expect("a batch");
        let ctx = SessionContext::new();
        for table in ["t", "u"] {
            let rows =
                MemTable::try_new(Arc::clone(&schema), vec![vec![batch.clone()]]).expect("a table");
            ctx.register_table(table, Arc::new(rows))
                .expect("registered");
        }
        ctx.state().create_logical_plan(sql).await.expect("planned")
    }

    async fn stem_count(sql: &str) -> Option<usize> {
        stems_of(&planned(sql).await, "t")
            .expect("walked")
            .map(|stems| stems.len())
    }

    #[tokio::test]
    async fn a_query_that_is_one_chain_over_the_table_is_one_stem_below_its_sort() {
        let sql = "SELECT a % 3 AS k, count(*) AS n FROM t WHERE b > 12 GROUP BY 1 ORDER BY 1";
        let plan = planned(sql).await;
        let stems = stems_of(&plan, "t").expect("walked").expect("served");
        assert_eq!(stems.len(), 1);
        assert!(matches!(plan, LogicalPlan::Sort(_)), "{plan}");
        assert!(
            matches!(stems[0], LogicalPlan::Projection(_)),
            "{}",
            stems[0]
        );
        assert_eq!(plan.inputs()[0], &stems[0]);
    }

    #[tokio::test]
    async fn a_cte_referred_to_twice_is_one_stem_and_the_join_over_it_is_not_in_it() {
        let sql = "WITH f AS (SELECT a FROM t WHERE a > 3) \
                   SELECT count(*) FROM f AS x JOIN f AS y ON x.a = y.a JOIN u ON u.a = x.a";
        assert_eq!(stem_count(sql).await, Some(1));
    }

    #[tokio::test]
    async fn two_different_narrowings_are_two_stems() {
        let sql = "SELECT (SELECT count(*) FROM t WHERE a > 3) AS x, \
                          (SELECT max(b) FROM t WHERE a < 3) AS y";
        assert_eq!(stem_count(sql).await, Some(2));
    }

    #[tokio::test]
    async fn a_query_not_wholly_in_stems_reads_the_table_itself() {
        for sql in [
            // Every row, not narrowed.
            "SELECT a FROM t",
            "SELECT a FROM t ORDER BY a LIMIT 3",
            // A scan under a join with no narrowing of its own.
            "SELECT count(*) FROM t JOIN u ON t.a = u.a",
            // A narrowing whose filter reads a subquery.
            "SELECT count(*) FROM t WHERE a IN (SELECT a FROM u)",
            // Volatile.
            "SELECT count(*) FROM t WHERE random() < a",
            // No scan of t at all.
            "SELECT count(*) FROM u WHERE a > 1",
        ] {
            assert_eq!(stem_count(sql).await, None, "{sql}");
        }
    }

    #[tokio::test]
    async fn a_stems_scan_conditions_are_the_parts_of_the_filter_over_its_scan() {
        let plan = planned("SELECT count(*) FROM t WHERE a > 3 AND b < 19").await;
        let stems = stems_of(&plan, "t").expect("walked").expect("served");
        let conditions: Vec<String> = scan_conditions(&stems[0], "t")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(conditions, ["t.a > Int64(3)", "t.b < Int64(19)"]);
        let unfiltered = planned("SELECT count(*) FROM t GROUP BY a").await;
        let stems = stems_of(&unfiltered, "t").expect("walked").expect("served");
        assert!(scan_conditions(&stems[0], "t").is_empty());
    }

    #[tokio::test]
    async fn conditions_already_met_leave_the_stem_and_its_columns_stay() {
        let plan =
            planned("SELECT a, count(*) AS n FROM t WHERE a > 3 AND b < 19 GROUP BY a").await;
        let stem = &stems_of(&plan, "t").expect("walked").expect("served")[0];
        let met = scan_conditions(stem, "t");

        let partly = without_conditions(stem, "t", &met[..1]).expect("rewritten");
        let left: Vec<String> = scan_conditions(&partly, "t")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(left, ["t.b < Int64(19)"]);
        assert_eq!(partly.schema(), stem.schema());

        let wholly = without_conditions(stem, "t", &met).expect("rewritten");
        assert!(scan_conditions(&wholly, "t").is_empty());
        let mut filters = 0;
        wholly
            .apply(|node| {
                filters += usize::from(matches!(node, LogicalPlan::Filter(_)));
                Ok(TreeNodeRecursion::Continue)
            })
            .expect("walked");
        assert_eq!(filters, 0, "{wholly}");
        assert_eq!(wholly.schema(), stem.schema());
    }
}
