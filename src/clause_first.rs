//! A logical optimizer rule: before `ebi_<rule>(...) IS NOT NULL` in a filter, the rule's
//! single-column inclusion clauses (`ebi_<rule>_included_by_der_procedure_all(...)`), which hold
//! wherever the flag does. The answer is unchanged; with Parquet filter pushdown the scan tests
//! the procedure codes first and decodes the other columns only for the few rows they keep.

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::tree_node::Transformed;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{Expr, Filter, LogicalPlan, ScalarUDF};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use ebiq_udfs::RuleFunction;

/// See the module documentation.
#[derive(Debug, Default)]
pub struct RuleClausesFirst;

impl OptimizerRule for RuleClausesFirst {
    fn name(&self) -> &str {
        "ebiq_rule_clauses_first"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Filter(filter) = plan else {
            return Ok(Transformed::no(plan));
        };
        let conjuncts: Vec<&Expr> = split_conjunction(&filter.predicate);
        let mut clauses: Vec<Expr> = Vec::new();
        for conjunct in &conjuncts {
            let Expr::IsNotNull(inner) = conjunct else {
                continue;
            };
            let Expr::ScalarFunction(call) = inner.as_ref() else {
                continue;
            };
            let Some(function) = call.func.inner().downcast_ref::<RuleFunction>() else {
                continue;
            };
            for (clause, position) in function.necessary_clauses() {
                let Some(argument) = call.args.get(position) else {
                    continue;
                };
                let expr = Expr::ScalarFunction(ScalarFunction::new_udf(
                    Arc::new(ScalarUDF::new_from_impl(clause)),
                    vec![argument.clone()],
                ));
                // Once only, however many times the optimizer passes over the plan.
                if !conjuncts.contains(&&expr) && !clauses.contains(&expr) {
                    clauses.push(expr);
                }
            }
        }
        if clauses.is_empty() {
            return Ok(Transformed::no(LogicalPlan::Filter(filter)));
        }
        let Some(predicate) = conjunction(clauses.into_iter().chain(conjuncts.into_iter().cloned()))
        else {
            return Ok(Transformed::no(LogicalPlan::Filter(filter)));
        };
        let rewritten = Filter::try_new(predicate, Arc::clone(&filter.input))?;
        Ok(Transformed::yes(LogicalPlan::Filter(rewritten)))
    }
}
