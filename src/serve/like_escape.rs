//! `LIKE ... ESCAPE 'c'` with an escape character other than the backslash, which DataFusion
//! refuses at execution. SQLAlchemy's dialect escapes the `_` of `pg_` so when it lists schemas
//! (`nspname NOT LIKE 'pg/_' || '%' ESCAPE '/'`). The pattern is rewritten into the backslash
//! form it means, so the match is PostgreSQL's.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Expr, Value};

/// `pattern` with `escape` as its escape character, written with the backslash instead.
fn with_backslash_escape(pattern: &str, escape: char) -> Result<String> {
    let mut out = String::with_capacity(pattern.len() + 2);
    let mut chars = pattern.chars();
    while let Some(ch) = chars.next() {
        if ch == escape {
            match chars.next() {
                Some(escaped @ ('%' | '_' | '\\')) => {
                    out.push('\\');
                    out.push(escaped);
                }
                Some(literal) => out.push(literal),
                None => return exec_err!("LIKE pattern must not end with escape character"),
            }
        } else if ch == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(ch);
        }
    }
    Ok(out)
}

/// The function the rewritten `LIKE` calls on its pattern.
const FUNCTION: &str = "pg_like_backslash_pattern";

/// `LIKE`/`ILIKE` with a single-character escape other than `\` as the same match written with
/// the backslash: the pattern goes through [`FUNCTION`], the `ESCAPE` clause goes.
pub(super) fn rewrite(expr: &mut Expr) -> bool {
    let (Expr::Like {
        pattern,
        escape_char,
        ..
    }
    | Expr::ILike {
        pattern,
        escape_char,
        ..
    }) = expr
    else {
        return false;
    };
    let escape = match escape_char.as_ref().map(|v| &v.value) {
        Some(Value::SingleQuotedString(text)) if text != "\\" && text.chars().count() == 1 => {
            text.clone()
        }
        _ => return false,
    };
    let call = format!("{FUNCTION}({pattern}, '{}')", escape.replace('\'', "''"));
    let Some(call) = super::parse_expr::parse_expr(&call) else {
        return false;
    };
    **pattern = call;
    *escape_char = None;
    true
}

pub(super) fn register(ctx: &SessionContext) {
    ctx.register_udf(create_udf(
        FUNCTION,
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args| {
            let rows = args
                .iter()
                .find_map(|arg| match arg {
                    ColumnarValue::Array(array) => Some(array.len()),
                    ColumnarValue::Scalar(_) => None,
                })
                .unwrap_or(1);
            let patterns = args[0].to_array(rows)?;
            let escapes = args[1].to_array(rows)?;
            let mut out = StringBuilder::new();
            for (pattern, escape) in patterns
                .as_string::<i32>()
                .iter()
                .zip(escapes.as_string::<i32>().iter())
            {
                match (pattern, escape.and_then(|e| e.chars().next())) {
                    (Some(pattern), Some(escape)) => {
                        out.append_value(with_backslash_escape(pattern, escape)?)
                    }
                    _ => out.append_null(),
                }
            }
            let out = out.finish();
            Ok(
                if rows == 1 && args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
                    ColumnarValue::Scalar(datafusion::scalar::ScalarValue::try_from_array(&out, 0)?)
                } else {
                    ColumnarValue::Array(Arc::new(out))
                },
            )
        }),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_rewritten_with_the_backslash() {
        let cases = [
            ("pg/_%", '/', "pg\\_%"),
            ("a//b", '/', "a/b"),
            ("/%x", '/', "\\%x"),
            ("a\\b", '/', "a\\\\b"),
            ("#a", '#', "a"),
        ];
        for (pattern, escape, want) in cases {
            assert_eq!(
                with_backslash_escape(pattern, escape).expect("valid"),
                want,
                "{pattern}"
            );
        }
        assert!(with_backslash_escape("ab/", '/').is_err());
    }

    #[tokio::test]
    async fn a_like_with_another_escape_matches_as_postgres_matches() {
        let ctx = SessionContext::new();
        register(&ctx);
        let mut sql = datafusion::sql::sqlparser::parser::Parser::parse_sql(
            &datafusion::sql::sqlparser::dialect::PostgreSqlDialect {},
            "SELECT n FROM (VALUES ('pg_catalog'), ('pgx'), ('public'), ('a\\b')) AS t(n) \
             WHERE n NOT LIKE 'pg/_' || '%' ESCAPE '/' AND n NOT LIKE 'a\\b' ESCAPE '#' \
             ORDER BY n",
        )
        .expect("parses")
        .remove(0);
        let mut rewritten = 0;
        let _ = datafusion::sql::sqlparser::ast::visit_expressions_mut(&mut sql, |expr| {
            rewritten += usize::from(rewrite(expr));
            std::ops::ControlFlow::<()>::Continue(())
        });
        assert_eq!(rewritten, 2);
        let batches = ctx
            .sql(&sql.to_string())
            .await
            .expect("plans")
            .collect()
            .await
            .expect("runs");
        let names: Vec<String> = batches
            .iter()
            .flat_map(|b| {
                let column = b.column(0).as_string::<i32>().clone();
                (0..column.len()).map(move |i| column.value(i).to_owned())
            })
            .collect();
        assert_eq!(names, ["pgx", "public"]);
    }
}
