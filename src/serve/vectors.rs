//! PostgreSQL's vectors of column numbers and oids (`pg_index.indkey`, `pg_index.indclass`,
//! `pg_constraint.conkey`, ...) as arrays.
//!
//! Clients reflect a table's keys by unnesting those vectors (SQLAlchemy's
//! `unnest(indkey)` zipped with `generate_subscripts(indkey, 1)`). The catalogue
//! `datafusion-postgres` provides holds them as text, space-separated as PostgreSQL prints an
//! `int2vector` (`1 2`) or as an array (`[2, 20, 3]`, `{1,2}`), and DataFusion cannot unnest text.
//! `catalog_sql` rewrites those calls into these two functions, whose arrays DataFusion unnests.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int32Builder, ListBuilder, new_null_array,
};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

/// The column numbers a vector's text holds, or `None` for text that is not such a vector.
fn column_numbers(text: &str) -> Option<Vec<i32>> {
    let inner = text
        .trim()
        .trim_start_matches(['[', '{'])
        .trim_end_matches([']', '}']);
    inner
        .split([' ', ','])
        .filter(|part| !part.is_empty())
        .map(|part| part.parse().ok())
        .collect()
}

/// The vector column's values as text, whichever string type the catalogue gave.
fn texts(arg: &ColumnarValue, rows: usize) -> Result<ArrayRef> {
    let array = arg.to_array(rows)?;
    Ok(match array.data_type() {
        DataType::Null => new_null_array(&DataType::Utf8, rows),
        _ => datafusion::arrow::compute::cast(&array, &DataType::Utf8)?,
    })
}

fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(item, true)))
}

/// `pg_vector_elements(vector)`: the vector's numbers as an `integer` array (column numbers of an
/// `int2vector`, oids of an `oidvector`; both fit).
#[derive(Debug, PartialEq, Eq, Hash)]
struct VectorElements {
    signature: Signature,
}

impl ScalarUDFImpl for VectorElements {
    fn name(&self) -> &str {
        "pg_vector_elements"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(list_of(DataType::Int32))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let texts = texts(&args.args[0], args.number_rows)?;
        let mut lists = ListBuilder::new(Int32Builder::new());
        for text in texts.as_string::<i32>() {
            match text.map(|t| (t, column_numbers(t))) {
                None => lists.append_null(),
                Some((_, Some(numbers))) => {
                    lists.values().append_slice(&numbers);
                    lists.append(true);
                }
                Some((t, None)) => return exec_err!("'{t}' is not a column-number vector"),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(lists.finish())))
    }
}

/// `pg_vector_subscripts(vector, dimension)`: `1..=n` for a vector of `n` numbers, as
/// `generate_subscripts` gives them for its first dimension (and nothing for any other: a vector
/// has one).
#[derive(Debug, PartialEq, Eq, Hash)]
struct VectorSubscripts {
    signature: Signature,
}

impl ScalarUDFImpl for VectorSubscripts {
    fn name(&self) -> &str {
        "pg_vector_subscripts"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(list_of(DataType::Int32))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let texts = texts(&args.args[0], rows)?;
        let dimensions = args.args[1].to_array(rows)?;
        let dimensions = datafusion::arrow::compute::cast(&dimensions, &DataType::Int32)?;
        let dimensions = dimensions.as_primitive::<datafusion::arrow::datatypes::Int32Type>();
        let mut lists = ListBuilder::new(Int32Builder::new());
        for (text, dimension) in texts.as_string::<i32>().iter().zip(dimensions.iter()) {
            let numbers = match text {
                Some(t) => match column_numbers(t) {
                    Some(numbers) => Some(numbers),
                    None => return exec_err!("'{t}' is not a column-number vector"),
                },
                None => None,
            };
            match (numbers, dimension) {
                (Some(numbers), Some(1)) => {
                    let count = i32::try_from(numbers.len()).unwrap_or(i32::MAX);
                    lists.values().extend((1..=count).map(Some));
                    lists.append(true);
                }
                _ => lists.append_null(),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(lists.finish())))
    }
}

pub(super) fn register(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::new_from_impl(VectorElements {
        signature: Signature::any(1, Volatility::Immutable),
    }));
    ctx.register_udf(ScalarUDF::new_from_impl(VectorSubscripts {
        signature: Signature::any(2, Volatility::Immutable),
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_of_a_vector_parse() {
        assert_eq!(column_numbers("1 2"), Some(vec![1, 2]));
        assert_eq!(column_numbers("[2, 20, 3]"), Some(vec![2, 20, 3]));
        assert_eq!(column_numbers("{1,-2}"), Some(vec![1, -2]));
        assert_eq!(column_numbers(""), Some(vec![]));
        assert_eq!(column_numbers("1 x"), None);
    }

    #[tokio::test]
    async fn unnested_elements_zip_with_their_subscripts() {
        let ctx = SessionContext::new();
        register(&ctx);
        let batches = ctx
            .sql(
                "SELECT k, unnest(pg_vector_elements(v)) AS attnum, \
                 unnest(pg_vector_subscripts(v, 1)) AS ord \
                 FROM (VALUES ('a', '3 1'), ('b', '[7]'), ('c', NULL), ('d', '')) AS t(k, v) \
                 ORDER BY k, ord",
            )
            .await
            .expect("plans")
            .collect()
            .await
            .expect("runs");
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .expect("formats")
            .to_string();
        let rows: Vec<&str> = text
            .lines()
            .skip(3)
            .filter(|l| l.starts_with('|'))
            .collect();
        assert_eq!(
            rows,
            [
                "| a | 3      | 1   |",
                "| a | 1      | 2   |",
                "| b | 7      | 1   |"
            ],
            "{text}"
        );
    }
}
