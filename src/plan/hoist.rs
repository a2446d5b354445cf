//! The EBI rule functions (and `sus_month`) that stems call on their scan's columns, computed
//! once per row by the shared scan ([`super::one_scan`]) rather than once per stem.
//!
//! A call of an `ebi_` function or `sus_month` whose arguments are columns of the scan (or
//! constants), made in the filters, projections and groupings right over the scan, becomes a
//! column of a wider scan: the scan computes it once for every row, and each stem reads the
//! column. A call higher up (over a grouping or an alias, whose columns are no longer the
//! scan's) is left where it is.

use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, TableReference};
use datafusion::error::Result;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan, LogicalPlanBuilder, ScalarUDF};
use ebiq_udfs::RuleFunction;

use super::stems::is_scan_of;

/// Whether a function is worth computing once per row for every stem: the EBI rules and their
/// parts (`ebi_`), and the month check every report query filters on.
fn worth_computing_once(name: &str) -> bool {
    name.starts_with("ebi_") || name == "sus_month" || name == "sus_month_between"
}

/// The calls the scan computes, in the order of their columns after the table's own.
#[derive(Debug, Default)]
pub(crate) struct Hoisted {
    /// Each call, over the scan's columns as the stems name them.
    pub(crate) calls: Vec<Expr>,
    fields: Vec<Field>,
}

impl Hoisted {
    /// The name of the column holding call `index`.
    pub(crate) fn column_name(index: usize) -> String {
        format!("__ebiq_computed_{index}")
    }

    /// The table's schema with a column for each call after its own.
    pub(crate) fn widen(&self, table: &Schema) -> SchemaRef {
        let fields = table.fields().iter().map(|f| f.as_ref().clone());
        Arc::new(Schema::new(
            fields
                .chain(self.fields.iter().cloned())
                .collect::<Vec<_>>(),
        ))
    }

    /// What the scan computes for call `index`: the call itself, or, for a rule's flag when the
    /// scan also computes a test of that rule's inclusion on the same columns, the flag only
    /// where that test holds (`<flag>_where(test, columns...)`, as `CASE WHEN test THEN flag
    /// END` but without filtering the columns and scattering the flags back). The flag is NULL
    /// wherever the test is not TRUE, so the answer is the same; the rule's own screen of the
    /// procedure codes then runs only on the rows the test keeps, rather than a second time on
    /// every row.
    pub(crate) fn computed(&self, index: usize) -> Expr {
        let call = self.calls[index].clone();
        let guard = self
            .calls
            .iter()
            .filter(|other| implied_by_flag(&call, other))
            .min_by_key(|other| match other {
                Expr::ScalarFunction(test) => test.args.len(),
                _ => usize::MAX,
            });
        guard
            .and_then(|test| flag_where(&call, test))
            .unwrap_or(call)
    }
}

fn rule_function(call: &ScalarFunction) -> Option<&RuleFunction> {
    call.func.inner().downcast_ref::<RuleFunction>()
}

/// `call` of a rule's flag computed only where `test`, a test of its inclusion that it implies,
/// holds: `<flag>_where(test, columns...)`.
fn flag_where(call: &Expr, test: &Expr) -> Option<Expr> {
    let (Expr::ScalarFunction(flag), Expr::ScalarFunction(implied)) = (call, test) else {
        return None;
    };
    let guarded = rule_function(flag)?.flag_where(rule_function(implied)?)?;
    let mut args = vec![test.clone()];
    args.extend(flag.args.iter().cloned());
    Some(Expr::ScalarFunction(ScalarFunction::new_udf(
        Arc::new(ScalarUDF::new_from_impl(guarded)),
        args,
    )))
}

/// Whether `test` is TRUE wherever `flag`, a rule's flag, is not NULL: a function of the same rule
/// testing its inclusion ([`RuleFunction::flag_implies`]), on the same arguments as the flag's
/// for its columns.
fn implied_by_flag(flag: &Expr, test: &Expr) -> bool {
    let (Expr::ScalarFunction(flag), Expr::ScalarFunction(test)) = (flag, test) else {
        return false;
    };
    let (Some(flag_function), Some(test_function)) = (
        flag.func.inner().downcast_ref::<RuleFunction>(),
        test.func.inner().downcast_ref::<RuleFunction>(),
    ) else {
        return false;
    };
    let Some(positions) = flag_function.flag_implies(test_function) else {
        return false;
    };
    positions.len() == test.args.len()
        && positions
            .iter()
            .zip(&test.args)
            .all(|(&at, arg)| flag.args.get(at) == Some(arg))
}

/// Adds to `hoisted` the rule calls `stem` makes right over its scan of `table` (named
/// `scan_name`).
pub(crate) fn find_calls(
    stem: &LogicalPlan,
    table: &str,
    scan_name: &TableReference,
    hoisted: &mut Hoisted,
) -> Result<()> {
    over_scan_nodes(stem, table, &mut |node| {
        let input = node.inputs()[0].schema().clone();
        for expr in node.expressions() {
            expr.apply(|e| {
                if !is_rule_call_on(e, scan_name) {
                    return Ok(TreeNodeRecursion::Continue);
                }
                if !hoisted.calls.contains(e) {
                    let (_, field) = e.to_field(input.as_ref())?;
                    let name = Hoisted::column_name(hoisted.calls.len());
                    hoisted.fields.push(field.as_ref().clone().with_name(name));
                    hoisted.calls.push(e.clone());
                }
                Ok(TreeNodeRecursion::Jump)
            })?;
        }
        Ok(())
    })?;
    Ok(())
}

/// Where a node stands over a scan of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Over {
    /// The scan, or a filter or projection with only such nodes under it down to the scan: its
    /// columns are the scan's, by the scan's name.
    Scan,
    /// An aggregation right over such a node: its expressions read the scan's columns, its
    /// output does not.
    Aggregation,
    /// Anything else.
    Other,
}

/// Where `plan` stands over a scan of `table`, given where its inputs stand.
fn over(plan: &LogicalPlan, table: &str, inputs: &[Over]) -> Over {
    if is_scan_of(plan, table) {
        return Over::Scan;
    }
    if inputs != [Over::Scan] {
        return Over::Other;
    }
    match plan {
        LogicalPlan::Filter(_) | LogicalPlan::Projection(_) => Over::Scan,
        // Grouping sets give more columns than expressions: their names could not be kept.
        LogicalPlan::Aggregate(aggregate)
            if !aggregate
                .group_expr
                .iter()
                .any(|e| matches!(e, Expr::GroupingSet(_))) =>
        {
            Over::Aggregation
        }
        _ => Over::Other,
    }
}

/// Calls `visit` on each node of `plan` whose expressions read a scan of `table` directly (see
/// [`Over`]); where `plan` stands.
fn over_scan_nodes(
    plan: &LogicalPlan,
    table: &str,
    visit: &mut impl FnMut(&LogicalPlan) -> Result<()>,
) -> Result<Over> {
    if is_scan_of(plan, table) {
        return Ok(Over::Scan);
    }
    let mut inputs = Vec::new();
    for input in plan.inputs() {
        inputs.push(over_scan_nodes(input, table, visit)?);
    }
    let at = over(plan, table, &inputs);
    if at != Over::Other {
        visit(plan)?;
    }
    Ok(at)
}

/// `stem` with its scan of `table` replaced by `wide_scan` (named `scan_name`: the table's
/// columns then one per call of `hoisted`), and those calls right over the scan replaced by the
/// scan's columns for them. The stem's columns are as before.
pub(crate) fn hoist_calls(
    stem: &LogicalPlan,
    table: &str,
    scan_name: &TableReference,
    wide_scan: &LogicalPlan,
    hoisted: &Hoisted,
) -> Result<LogicalPlan> {
    let (rewritten, _) = rewrite(stem, table, scan_name, wide_scan, hoisted)?;
    if rewritten.schema() == stem.schema() {
        return Ok(rewritten);
    }
    // A stem whose top passes the scan's columns through (a filter) would show the new ones.
    let columns = stem
        .schema()
        .iter()
        .map(|(qualifier, field)| Expr::Column(Column::new(qualifier.cloned(), field.name())));
    LogicalPlanBuilder::from(rewritten)
        .project(columns)?
        .build()
}

/// `plan` rewritten, and where it stands over the scan.
fn rewrite(
    plan: &LogicalPlan,
    table: &str,
    scan_name: &TableReference,
    wide_scan: &LogicalPlan,
    hoisted: &Hoisted,
) -> Result<(LogicalPlan, Over)> {
    if is_scan_of(plan, table) {
        return Ok((wide_scan.clone(), Over::Scan));
    }
    let mut inputs = Vec::new();
    let mut stands = Vec::new();
    for input in plan.inputs() {
        let (input, at) = rewrite(input, table, scan_name, wide_scan, hoisted)?;
        inputs.push(input);
        stands.push(at);
    }
    let at = over(plan, table, &stands);
    let mut exprs = plan.expressions();
    if at != Over::Other {
        for (index, expr) in exprs.iter_mut().enumerate() {
            let replaced = expr.clone().transform_down(|e| {
                let Some(at) = hoisted.calls.iter().position(|call| *call == e) else {
                    return Ok(Transformed::no(e));
                };
                let column = Column::new(Some(scan_name.clone()), Hoisted::column_name(at));
                Ok(Transformed::yes(Expr::Column(column)))
            })?;
            if !replaced.transformed {
                continue;
            }
            *expr = match (plan, replaced.data) {
                // A filter's condition has no name; an alias keeps its own.
                (LogicalPlan::Filter(_), new) | (_, new @ Expr::Alias(_)) => new,
                // Any other expression keeps its name, which the nodes over it refer to.
                (_, new) => {
                    let (qualifier, field) = plan.schema().qualified_field(index);
                    new.alias_qualified(qualifier.cloned(), field.name())
                }
            };
        }
    }
    Ok((plan.with_new_exprs(exprs, inputs)?, at))
}

/// Whether `expr` calls a rule function on columns of the scan named `scan_name` and constants.
fn is_rule_call_on(expr: &Expr, scan_name: &TableReference) -> bool {
    let Expr::ScalarFunction(call) = expr else {
        return false;
    };
    worth_computing_once(call.name())
        && !expr.is_volatile()
        && call.args.iter().all(|arg| match arg {
            Expr::Column(column) => column.relation.as_ref() == Some(scan_name),
            Expr::Literal(..) => true,
            _ => false,
        })
}

#[cfg(test)]
mod tests {
    use datafusion::execution::FunctionRegistry;
    use datafusion::prelude::{SessionContext, col};

    use super::*;

    /// The rule's functions, called on columns of `opa` named as the rule names them.
    fn call(ctx: &SessionContext, function: &str, columns: &[&str]) -> Expr {
        let udf = ctx.udf(function).expect("a rule function");
        udf.call(columns.iter().map(|c| col(*c)).collect())
    }

    #[test]
    fn the_flag_is_computed_only_where_a_test_of_its_inclusion_on_its_columns_holds() {
        let mut ctx = SessionContext::new();
        ebiq_udfs::register_all(&mut ctx).expect("the rules register");
        let arguments = ["procedures", "age", "age_then", "diagnoses", "category"];
        let flag = call(&ctx, "ebi_lower_back_imaging", &arguments);
        let by_procedures = call(
            &ctx,
            "ebi_lower_back_imaging_included_by_der_procedure_all",
            &["procedures"],
        );
        let on_other_codes = call(
            &ctx,
            "ebi_lower_back_imaging_included_by_der_procedure_all",
            &["diagnoses"],
        );
        let excluded = call(&ctx, "ebi_lower_back_imaging_excluded", &arguments[3..]);

        let alone = Hoisted {
            calls: vec![flag.clone(), on_other_codes.clone(), excluded],
            fields: Vec::new(),
        };
        assert_eq!(
            alone.computed(0),
            flag,
            "no test of its inclusion on its columns"
        );

        let guarded = Hoisted {
            calls: vec![flag.clone(), on_other_codes, by_procedures.clone()],
            fields: Vec::new(),
        };
        let Expr::ScalarFunction(computed) = guarded.computed(0) else {
            panic!("the flag is a call");
        };
        assert_eq!(computed.name(), "ebi_lower_back_imaging_where");
        let Expr::ScalarFunction(flag) = flag else {
            panic!("the flag is a call");
        };
        let mut expected_args = vec![by_procedures.clone()];
        expected_args.extend(flag.args);
        assert_eq!(
            computed.args, expected_args,
            "the test, then the flag's columns"
        );
        assert_eq!(
            guarded.computed(2),
            by_procedures,
            "the test is computed as it is"
        );
    }
}
