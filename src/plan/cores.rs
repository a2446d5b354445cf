//! Stems that group the same rows the same way share one aggregation ([`super::one_scan`]).
//!
//! A stem's *core* is its lowest aggregation: the one right over the filters and projections of
//! its scan. Two report queries often have the same core up to their aggregate expressions: a
//! national trend and its control chart both count every row by month, and a funnel plot's
//! national share re-aggregates the providers' counts it also reads on their own. Each such
//! aggregation would hash every row of the table again. Stems whose cores have the same input and
//! grouping run one aggregation instead, with the aggregate expressions of them all; each stem
//! then reads its own columns of that result, and what it does over its core (a projection, an
//! alias, a further aggregation of a few hundred rows) runs in its query.

use std::sync::Arc;

use datafusion::error::Result;
use datafusion::logical_expr::{Aggregate, Expr, LogicalPlan};

use super::one_scan::with_columns_of;

/// The lowest aggregation in `stem`'s chain of single-input nodes down to its scan.
pub(crate) fn lowest_aggregate(stem: &LogicalPlan) -> Option<&Aggregate> {
    let mut lowest = None;
    let mut at = stem;
    loop {
        if let LogicalPlan::Aggregate(aggregate) = at {
            lowest = Some(aggregate);
        }
        match at.inputs().as_slice() {
            [input] => at = input,
            _ => return lowest,
        }
    }
}

/// One aggregation that serves the cores of several stems.
#[derive(Debug)]
pub(crate) struct SharedCore {
    input: Arc<LogicalPlan>,
    group_expr: Vec<Expr>,
    aggr_expr: Vec<Expr>,
    /// The stems it serves, by their index.
    pub(crate) members: Vec<usize>,
}

impl SharedCore {
    /// The aggregation: the members' grouping, with each aggregate expression any of them has,
    /// once.
    pub(crate) fn plan(&self) -> Result<LogicalPlan> {
        Ok(LogicalPlan::Aggregate(Aggregate::try_new(
            Arc::clone(&self.input),
            self.group_expr.clone(),
            self.aggr_expr.clone(),
        )?))
    }
}

/// Groups `stems` (each with its index) by their cores: the stems whose cores no other stem
/// shares, by index, and a [`SharedCore`] for each set of two or more that share one.
pub(crate) fn share_cores(stems: &[(usize, LogicalPlan)]) -> (Vec<usize>, Vec<SharedCore>) {
    let mut cores: Vec<SharedCore> = Vec::new();
    let mut alone = Vec::new();
    for (index, stem) in stems {
        let Some(core) = lowest_aggregate(stem).filter(|core| !has_grouping_sets(core)) else {
            alone.push(*index);
            continue;
        };
        let same = cores
            .iter_mut()
            .find(|shared| shared.input == core.input && shared.group_expr == core.group_expr);
        match same {
            Some(shared) => {
                for expr in &core.aggr_expr {
                    if !shared.aggr_expr.contains(expr) {
                        shared.aggr_expr.push(expr.clone());
                    }
                }
                shared.members.push(*index);
            }
            None => cores.push(SharedCore {
                input: Arc::clone(&core.input),
                group_expr: core.group_expr.clone(),
                aggr_expr: core.aggr_expr.clone(),
                members: vec![*index],
            }),
        }
    }
    let (shared, single): (Vec<_>, Vec<_>) =
        cores.into_iter().partition(|core| core.members.len() > 1);
    alone.extend(single.into_iter().flat_map(|core| core.members));
    alone.sort_unstable();
    (alone, shared)
}

/// Grouping sets give more columns than expressions, so a core's columns could not be matched by
/// name.
fn has_grouping_sets(core: &Aggregate) -> bool {
    core.group_expr
        .iter()
        .any(|e| matches!(e, Expr::GroupingSet(_)))
}

/// `stem` with its core ([`lowest_aggregate`]) replaced by `result` (a plan of the shared
/// aggregation's result, named `result_name`), projected to the core's columns with their names
/// and qualifiers, so that the nodes over the core read it as before.
pub(crate) fn read_through(
    stem: &LogicalPlan,
    result: LogicalPlan,
    result_name: &str,
) -> Result<LogicalPlan> {
    if let LogicalPlan::Aggregate(core) = stem
        && lowest_aggregate(&core.input).is_none()
    {
        return with_columns_of(stem, result, result_name);
    }
    let inputs = stem.inputs();
    let [input] = inputs.as_slice() else {
        return Ok(stem.clone());
    };
    let input = read_through(input, result, result_name)?;
    stem.with_new_exprs(stem.expressions(), vec![input])
}
