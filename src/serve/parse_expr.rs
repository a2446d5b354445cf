//! Parsing an SQL expression the server writes itself, as sqlparser parses a client's: shared by
//! the rewrites of catalogue queries and of `LIKE ... ESCAPE`.

use datafusion::sql::sqlparser::ast::Expr;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// `text` parsed as an expression, or `None` if it is not one.
pub(super) fn parse_expr(text: &str) -> Option<Expr> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(text)
        .ok()?
        .parse_expr()
        .ok()
}
