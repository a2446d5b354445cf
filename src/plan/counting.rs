//! For tests: a function that returns its argument and counts the rows it is called on, to show
//! how many times a plan computes it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};

/// `name(a INT)`, returning `a`, and the count of the rows it has been called on.
pub(crate) fn counting_function(name: &str) -> (ScalarUDF, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let function = create_udf(
        name,
        vec![DataType::Int32],
        DataType::Int32,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            let rows = match &args[0] {
                ColumnarValue::Array(array) => array.len(),
                ColumnarValue::Scalar(_) => 1,
            };
            counter.fetch_add(rows, Ordering::Relaxed);
            Ok(args[0].clone())
        }),
    );
    (function, calls)
}
