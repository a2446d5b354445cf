//! Catalogue queries that clients send at start-up or to reflect a table, rewritten into SQL that
//! DataFusion plans and that gives PostgreSQL's answer. Only catalogue tables are concerned; a query
//! over the dataset is never rewritten.
//!
//! - Comparisons of a `regproc` column of `pg_type` with `0`. In PostgreSQL those columns are
//!   function oids, so the ADBC driver's start-up query asks `typreceive != 0` for "has a receive
//!   function"; the catalogue `datafusion-postgres` provides holds them as the names PostgreSQL
//!   displays, with `-` for oid 0, and DataFusion cannot compare `'boolrecv'` with `0`. The
//!   comparison becomes `typreceive != '-'`, which asks the same question; Npgsql's join of
//!   `pg_proc` to such a column by oid joins by name.
//! - Correlated scalar subqueries over catalogue tables (SQLAlchemy's column reflection reads each
//!   column's default, collation and identity options so). DataFusion plans such a subquery only
//!   if it is aggregated; PostgreSQL's catalogue gives at most one row for each, so `max(x)` is
//!   the same value.
//! - `unnest` and `generate_subscripts` over the vectors of column numbers in `pg_index` and
//!   `pg_constraint` (SQLAlchemy's reflection of primary keys and unique constraints), which the
//!   catalogue holds as text ([`super::vectors`]).
//! - `LIKE` with an escape character other than `\` ([`super::like_escape`]).
//! - Columns PostgreSQL's catalogue has and ebiq's lacks, NULL for every ebiq table, as NULL under
//!   their own name.

use std::ops::ControlFlow;

use async_trait::async_trait;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Ident,
    ObjectName, Query, Select, SelectItem, SetExpr, Statement, TableFactor, Value, VisitMut,
    VisitorMut, visit_expressions_mut,
};

use super::parse_expr::parse_expr;
use super::respond::PlanOf;

/// `pg_type`'s columns that hold a function (`regproc`).
const REGPROC_COLUMNS: [&str; 7] = [
    "typinput",
    "typoutput",
    "typreceive",
    "typsend",
    "typmodin",
    "typmodout",
    "typanalyze",
];

/// Whether `expr` names (bare or qualified) one of `columns`.
fn names_one_of(expr: &Expr, columns: &[&str]) -> bool {
    let name = match expr {
        Expr::Identifier(ident) => ident,
        Expr::CompoundIdentifier(parts) => match parts.last() {
            Some(last) => last,
            None => return false,
        },
        _ => return false,
    };
    columns
        .iter()
        .any(|column| name.value.eq_ignore_ascii_case(column))
}

fn is_regproc_column(expr: &Expr) -> bool {
    names_one_of(expr, &REGPROC_COLUMNS)
}

/// Turns `proc.oid` into `proc.proname`, for a join of `pg_proc` to a `regproc` column (Npgsql's
/// `LEFT JOIN pg_proc AS proc ON proc.oid = typ.typreceive`): the catalogue holds the function's
/// name there, and each name a `regproc` column holds is one function's.
fn oid_to_proname(expr: &mut Expr) -> bool {
    match expr {
        Expr::CompoundIdentifier(parts)
            if parts.len() >= 2
                && parts
                    .last()
                    .is_some_and(|p| p.value.eq_ignore_ascii_case("oid")) =>
        {
            if let Some(last) = parts.last_mut() {
                last.value = "proname".to_owned();
            }
            true
        }
        _ => false,
    }
}

/// Catalogue columns that hold a vector of column numbers or oids (`int2vector`, `int2[]`,
/// `oidvector`), stored as text in ebiq's catalogue ([`super::vectors`]).
const VECTOR_COLUMNS: [&str; 6] = [
    "indkey",
    "indoption",
    "indclass",
    "indcollation",
    "conkey",
    "confkey",
];

fn is_vector_column(expr: &Expr) -> bool {
    names_one_of(expr, &VECTOR_COLUMNS)
}

/// A call's function name (lower case) and its plain arguments.
fn call_of(expr: &Expr) -> Option<(String, Vec<&Expr>)> {
    let Expr::Function(function) = expr else {
        return None;
    };
    let FunctionArguments::List(list) = &function.args else {
        return None;
    };
    let args = list
        .args
        .iter()
        .map(|arg| match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) => Some(expr),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some((function.name.to_string().to_ascii_lowercase(), args))
}

/// `unnest(indkey)` and `generate_subscripts(indkey, d)` over a vector column, as the array
/// functions of [`super::vectors`] give them; the dimension stays where the client put it (often
/// a placeholder, so the client's parameters keep their places).
fn vector_call(expr: &Expr) -> Option<Expr> {
    let (name, args) = call_of(expr)?;
    match (name.as_str(), args.as_slice()) {
        ("unnest" | "pg_catalog.unnest", [vector]) if is_vector_column(vector) => {
            parse_expr(&format!("unnest(pg_vector_elements({vector}))"))
        }
        ("generate_subscripts" | "pg_catalog.generate_subscripts", [vector, dimension])
            if is_vector_column(vector) =>
        {
            parse_expr(&format!(
                "unnest(pg_vector_subscripts({vector}, {dimension}))"
            ))
        }
        _ => None,
    }
}

fn is_zero(expr: &Expr) -> bool {
    matches!(expr, Expr::Value(value) if matches!(&value.value, Value::Number(n, _) if n == "0"))
}

/// Whether `name` is a catalogue table (`pg_attrdef`, `pg_catalog.pg_type`,
/// `information_schema.columns`).
fn is_catalog_table(name: &ObjectName) -> bool {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|part| part.to_string().to_ascii_lowercase())
        .collect();
    match parts.as_slice() {
        [table] => table.starts_with("pg_"),
        [.., schema, _] => schema == "pg_catalog" || schema == "information_schema",
        [] => false,
    }
}

/// Every table a `SELECT` reads: each `FROM` item and what it joins.
fn relations(select: &Select) -> impl Iterator<Item = &TableFactor> {
    select.from.iter().flat_map(|table| {
        std::iter::once(&table.relation).chain(table.joins.iter().map(|join| &join.relation))
    })
}

/// Whether a compound name (`pg_attribute.atthasdef`) is qualified by a table outside `inner`,
/// the names of a subquery's own tables ([`inner_names`]).
fn qualified_outside(parts: &[Ident], inner: &[String]) -> bool {
    parts.len() >= 2 && !inner.contains(&parts[parts.len() - 2].value.to_ascii_lowercase())
}

/// The single output of a catalogue subquery that is not aggregated yet, if `query` is one.
fn unaggregated_catalog_output(query: &mut Query) -> Option<&mut Expr> {
    if query.limit_clause.is_some() || query.order_by.is_some() {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    let grouped =
        !matches!(&select.group_by, GroupByExpr::Expressions(exprs, _) if exprs.is_empty());
    let reads_only_catalog = !select.from.is_empty()
        && relations(select).all(
            |relation| matches!(relation, TableFactor::Table { name, .. } if is_catalog_table(name)),
        );
    if grouped || !reads_only_catalog || select.projection.len() != 1 {
        return None;
    }
    match &mut select.projection[0] {
        SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. }
            if !is_aggregate(expr) =>
        {
            Some(expr)
        }
        _ => None,
    }
}

fn is_aggregate(expr: &Expr) -> bool {
    matches!(expr, Expr::Function(function)
        if ["max", "min", "count", "sum", "avg", "array_agg", "string_agg", "bool_or", "bool_and"]
            .iter()
            .any(|name| function.name.to_string().eq_ignore_ascii_case(name)))
}

/// `CASE WHEN c THEN (SELECT x FROM catalog ...) [ELSE NULL] END` as `(SELECT x ...)` guarded
/// by `c` ([`guarded`]). DataFusion does not decorrelate a subquery inside a `CASE` (nor in its
/// condition); outside one it does.
fn case_without_subquery(expr: &Expr) -> Option<Expr> {
    let Expr::Case {
        operand: None,
        conditions,
        else_result,
        ..
    } = expr
    else {
        return None;
    };
    let else_null = match else_result.as_deref() {
        None => true,
        Some(Expr::Value(value)) => matches!(value.value, Value::Null),
        Some(_) => false,
    };
    let [when] = conditions.as_slice() else {
        return None;
    };
    let Expr::Subquery(query) = &when.result else {
        return None;
    };
    let mut query = query.clone();
    if !else_null || unaggregated_catalog_output(&mut query).is_none() {
        return None;
    }
    guarded(&when.result, std::slice::from_ref(&when.condition))
}

/// `value` where every one of `guards` holds, else NULL, without a `CASE`:
/// `array_element(make_array(value), 2 - CAST((g1 AND g2) IS TRUE AS INT))`. Element 2 is past the
/// end, so NULL. `value` is computed for every row, which changes nothing for an aggregated
/// subquery: it cannot fail on a second row.
fn guarded(value: &Expr, guards: &[Expr]) -> Option<Expr> {
    let condition: Vec<String> = guards.iter().map(|guard| format!("({guard})")).collect();
    let text = format!(
        "array_element(make_array({value}), 2 - CAST(({}) IS TRUE AS INT))",
        condition.join(" AND ")
    );
    parse_expr(&text)
}

/// The names a subquery's own tables go by in its expressions: each table's name and alias.
fn inner_names(select: &Select) -> Vec<String> {
    let mut names = Vec::new();
    for relation in relations(select) {
        if let TableFactor::Table { name, alias, .. } = relation {
            if let Some(last) = name.0.last() {
                names.push(last.to_string().to_ascii_lowercase());
            }
            if let Some(alias) = alias {
                names.push(alias.name.value.to_ascii_lowercase());
            }
        }
    }
    names
}

/// Whether `expr` names columns, all of them qualified by a table outside `inner`.
fn only_outer_columns(expr: &Expr, inner: &[String]) -> bool {
    let mut outer = 0;
    let mut other = 0;
    let _ = datafusion::sql::sqlparser::ast::visit_expressions(expr, |e| {
        match e {
            Expr::CompoundIdentifier(parts) if qualified_outside(parts, inner) => outer += 1,
            Expr::CompoundIdentifier(_)
            | Expr::Identifier(_)
            | Expr::Subquery(_)
            | Expr::Exists { .. }
            | Expr::InSubquery { .. } => other += 1,
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    outer > 0 && other == 0
}

/// The conjuncts of `expr` (`a AND (b AND c)` is `a`, `b`, `c`).
fn conjuncts(expr: Expr, into: &mut Vec<Expr>) {
    match expr {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            conjuncts(*left, into);
            conjuncts(*right, into);
        }
        Expr::Nested(inner)
            if matches!(
                *inner,
                Expr::BinaryOp {
                    op: BinaryOperator::And,
                    ..
                }
            ) =>
        {
            conjuncts(*inner, into);
        }
        other => into.push(other),
    }
}

/// An aggregated catalogue subquery whose filter has conditions on the outer query's columns alone
/// (`WHERE pg_attribute.atthasdef AND d.adrelid = pg_attribute.attrelid`), with those conditions
/// moved out as guards ([`guarded`]): DataFusion cannot pull such a condition out of a subquery.
fn outer_conditions_out(expr: &Expr) -> Option<Expr> {
    let Expr::Subquery(query) = expr else {
        return None;
    };
    let mut query = query.clone();
    let SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    let inner = inner_names(select);
    let mut parts = Vec::new();
    conjuncts(select.selection.clone()?, &mut parts);
    let (outer, kept): (Vec<Expr>, Vec<Expr>) = parts
        .into_iter()
        .partition(|part| only_outer_columns(part, &inner));
    if outer.is_empty() {
        return None;
    }
    select.selection = kept.into_iter().reduce(|left, right| Expr::BinaryOp {
        left: Box::new(left),
        op: BinaryOperator::And,
        right: Box::new(right),
    });
    guarded(&Expr::Subquery(query), &outer)
}

/// Whether `query` reads `pg_sequence` alone. ebiq serves no sequences (nothing can create one),
/// so such a scalar subquery is NULL whatever the outer row; SQLAlchemy's identity-column
/// subquery refers to the outer query in its select list, which DataFusion cannot decorrelate.
fn reads_only_sequences(query: &Query) -> bool {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return false;
    };
    !select.from.is_empty()
        && relations(select).all(|relation| {
            matches!(relation, TableFactor::Table { name, .. }
                if name.0.last().is_some_and(|last| last.to_string().eq_ignore_ascii_case("pg_sequence")))
        })
}

/// `max(expr)`, as sqlparser would have parsed it.
fn max_of(expr: &Expr) -> Option<Expr> {
    parse_expr(&format!("max({expr})"))
}

/// Catalogue columns PostgreSQL has and ebiq's catalogue lacks, NULL for every ebiq table
/// (`pg_class.reloptions`: no table has storage options).
const ABSENT_NULL_COLUMNS: [&str; 1] = ["reloptions"];

/// A `SELECT` output that reads an absent column ([`ABSENT_NULL_COLUMNS`]) as NULL, keeping the
/// column's name (clients read reflection results by name).
fn absent_as_null(item: &mut SelectItem) -> bool {
    let SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) = item else {
        return false;
    };
    let Some(column) = parts.last().filter(|last| {
        ABSENT_NULL_COLUMNS
            .iter()
            .any(|absent| last.value.eq_ignore_ascii_case(absent))
    }) else {
        return false;
    };
    let alias = column.clone();
    *item = SelectItem::ExprWithAlias {
        expr: Expr::value(Value::Null),
        alias,
    };
    true
}

struct CatalogRewrites {
    rewritten: bool,
}

impl VisitorMut for CatalogRewrites {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let SetExpr::Select(select) = query.body.as_mut() {
            let reads_catalog = relations(select).any(
                |relation| matches!(relation, TableFactor::Table { name, .. } if is_catalog_table(name)),
            );
            for item in select.projection.iter_mut() {
                if reads_catalog && absent_as_null(item) {
                    self.rewritten = true;
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Subquery(query) = expr
            && reads_only_sequences(query)
        {
            // Still NULL over the empty table, and no longer correlated; its placeholders stay,
            // so the client's parameters keep their places.
            let inner = match query.body.as_ref() {
                SetExpr::Select(select) => inner_names(select),
                _ => Vec::new(),
            };
            let _ = visit_expressions_mut(query.as_mut(), |e| {
                if let Expr::CompoundIdentifier(parts) = e
                    && qualified_outside(parts, &inner)
                {
                    *e = Expr::value(Value::Null);
                }
                ControlFlow::<()>::Continue(())
            });
            self.rewritten = true;
            return ControlFlow::Continue(());
        }
        if let Some(unguarded) = case_without_subquery(expr) {
            *expr = unguarded;
            self.rewritten = true;
        }
        if let Expr::Subquery(query) = expr
            && let Some(output) = unaggregated_catalog_output(query)
            && let Some(aggregated) = max_of(output)
        {
            *output = aggregated;
            self.rewritten = true;
            if let Some(without) = outer_conditions_out(expr) {
                *expr = without;
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if super::like_escape::rewrite(expr) {
            self.rewritten = true;
            return ControlFlow::Continue(());
        }
        if let Some(call) = vector_call(expr) {
            *expr = call;
            self.rewritten = true;
            return ControlFlow::Continue(());
        }
        if let Expr::BinaryOp { left, op, right } = expr
            && matches!(op, BinaryOperator::Eq | BinaryOperator::NotEq)
        {
            let dash = || Expr::value(Value::SingleQuotedString("-".to_owned()));
            if is_regproc_column(left) && is_zero(right) {
                **right = dash();
                self.rewritten = true;
            } else if is_regproc_column(right) && is_zero(left) {
                **left = dash();
                self.rewritten = true;
            } else if (is_regproc_column(left) && oid_to_proname(right))
                || (is_regproc_column(right) && oid_to_proname(left))
            {
                self.rewritten = true;
            }
        }
        ControlFlow::Continue(())
    }
}

/// `statement` with its catalogue comparisons and subqueries rewritten, if it has any.
fn rewrite(statement: &Statement) -> Option<Statement> {
    let mut rewritten = statement.clone();
    let mut visitor = CatalogRewrites { rewritten: false };
    let _ = rewritten.visit(&mut visitor);
    visitor.rewritten.then_some(rewritten)
}

/// Plans catalogue queries in their rewritten form.
#[derive(Debug)]
pub(super) struct CatalogSql;

#[async_trait]
impl PlanOf for CatalogSql {
    async fn plan_of(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
    ) -> Option<datafusion::error::Result<LogicalPlan>> {
        let rewritten = rewrite(statement)?;
        Some(
            ctx.state()
                .statement_to_plan(DfStatement::Statement(Box::new(rewritten)))
                .await,
        )
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    fn rewritten(sql: &str) -> Option<String> {
        let statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .expect("parses")
            .remove(0);
        rewrite(&statement).map(|s| s.to_string())
    }

    #[test]
    fn adbc_s_type_query_compares_with_the_dash() {
        let sql = "SELECT oid, typname FROM pg_catalog.pg_type WHERE (typreceive != 0 OR \
                   0 <> t.typsend) AND typtype != 'r' AND typreceive::TEXT != 'array_recv'";
        let out = rewritten(sql).expect("rewritten");
        assert!(out.contains("typreceive <> '-'"), "{out}");
        assert!(out.contains("'-' <> t.typsend"), "{out}");
        assert!(out.contains("typtype <> 'r'"), "{out}");
    }

    #[test]
    fn catalogue_subqueries_are_aggregated_and_data_subqueries_are_not() {
        let sql = "SELECT a.attname, (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid) \
                   FROM pg_catalog.pg_attrdef d WHERE d.adrelid = a.attrelid) AS dflt, \
                   (SELECT c.collname FROM pg_collation c, pg_type t \
                   WHERE c.oid = a.attcollation AND t.oid = a.atttypid) AS coll \
                   FROM pg_catalog.pg_attribute a";
        let out = rewritten(sql).expect("rewritten");
        assert!(
            out.contains("(SELECT max(pg_catalog.pg_get_expr(d.adbin, d.adrelid))"),
            "{out}"
        );
        assert!(out.contains("(SELECT max(c.collname) FROM"), "{out}");

        let guarded = "SELECT CASE WHEN a.atthasdef THEN (SELECT d.adbin FROM pg_attrdef d \
                       WHERE d.adrelid = a.attrelid) ELSE NULL END FROM pg_attribute a";
        let out = rewritten(guarded).expect("rewritten");
        assert!(
            out.contains(
                "array_element(make_array((SELECT max(d.adbin) FROM pg_attrdef d WHERE \
                 d.adrelid = a.attrelid)), 2 - CAST(((a.atthasdef)) IS TRUE AS INT))"
            ),
            "{out}"
        );

        let identity = "SELECT (SELECT json_build_object('always', a.attidentity = 'a') \
                        FROM pg_catalog.pg_sequence WHERE seqrelid = a.attrelid) FROM pg_attribute a";
        assert_eq!(
            rewritten(identity).as_deref(),
            Some(
                "SELECT (SELECT json_build_object('always', NULL = 'a') \
                 FROM pg_catalog.pg_sequence WHERE seqrelid = NULL) FROM pg_attribute a"
            )
        );

        let over_data = "SELECT provider, (SELECT der_activity_month FROM opa o \
                         WHERE o.der_provider_code = p.provider) FROM providers p";
        assert_eq!(
            rewritten(over_data),
            None,
            "a query over the dataset keeps its meaning"
        );
        let already = "SELECT (SELECT count(*) FROM pg_class c WHERE c.oid = a.attrelid) \
                       FROM pg_attribute a";
        assert_eq!(rewritten(already), None);
    }

    #[test]
    fn npgsql_s_join_of_pg_proc_to_a_receive_function_joins_by_name() {
        let sql = "SELECT typ.oid FROM pg_catalog.pg_type AS typ \
                   LEFT JOIN pg_catalog.pg_proc AS proc ON proc.oid = typ.typreceive";
        let out = rewritten(sql).expect("rewritten");
        assert!(out.contains("ON proc.proname = typ.typreceive"), "{out}");
        assert!(out.starts_with("SELECT typ.oid FROM"), "{out}");
    }

    #[test]
    fn sqlalchemy_s_key_columns_unnest_as_arrays() {
        let sql = "SELECT pg_catalog.pg_constraint.conname, unnest(pg_catalog.pg_index.indkey) \
                   AS attnum, generate_subscripts(pg_catalog.pg_index.indkey, $1::INTEGER) AS ord \
                   FROM pg_catalog.pg_constraint JOIN pg_catalog.pg_index \
                   ON pg_catalog.pg_constraint.conindid = pg_catalog.pg_index.indexrelid";
        let out = rewritten(sql).expect("rewritten");
        assert!(
            out.contains("unnest(pg_vector_elements(pg_catalog.pg_index.indkey)) AS attnum"),
            "{out}"
        );
        assert!(
            out.contains(
                "unnest(pg_vector_subscripts(pg_catalog.pg_index.indkey, $1::INTEGER)) AS ord"
            ),
            "{out}"
        );
        assert_eq!(rewritten("SELECT unnest(codes) FROM opa"), None);

        let options = "SELECT pg_catalog.pg_class.relname, pg_catalog.pg_class.reloptions \
                       FROM pg_catalog.pg_class";
        assert_eq!(
            rewritten(options).as_deref(),
            Some("SELECT pg_catalog.pg_class.relname, NULL AS reloptions FROM pg_catalog.pg_class")
        );
    }

    #[test]
    fn other_comparisons_with_zero_are_left_alone() {
        assert_eq!(rewritten("SELECT * FROM t WHERE typlen != 0"), None);
        assert_eq!(rewritten("SELECT * FROM t WHERE typreceive > 0"), None);
    }
}
