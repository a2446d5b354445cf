//! `rate(x, n, confidence, multiplier)`: a crude rate with PHE's confidence interval.

use std::sync::LazyLock;

use arrow::datatypes::{DataType, Fields};
use datafusion_common::{Result, exec_err};
use datafusion_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::poisson::count_interval;
use super::{
    DOC_SECTION_STATS, coerce_numbers, confidence_level, each_complete_row, float_columns,
    float_fields, floats, one_confidence, struct_of_floats,
};

static FIELDS: LazyLock<Fields> = LazyLock::new(|| float_fields(&["value", "lower", "upper"]));

/// `[value, lower, upper]` of `x` events among `n` per `multiplier`, as PHE's `calculate_rate`:
/// exact Poisson limits below 10 events, Byar's from 10, divided by `n`. `None` when `n` is 0;
/// an error for a negative count or denominator.
pub fn rate_interval(x: f64, n: f64, level: f64, multiplier: f64) -> Result<Option<[f64; 3]>> {
    if x < 0.0 || n < 0.0 || x.is_nan() || n.is_nan() {
        return exec_err!("rate: {x} events among {n} is not a rate (need x >= 0 and n >= 0)");
    }
    if n == 0.0 {
        return Ok(None);
    }
    let [lower, upper] = count_interval(x, level)?;
    let per = multiplier / n;
    Ok(Some([x * per, lower * per, upper * per]))
}

/// `rate(x, n, confidence, multiplier)` -> `{value, lower, upper}`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Rate {
    signature: Signature,
}

impl Default for Rate {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl Rate {
    /// The function.
    pub fn new() -> Self {
        Self::default()
    }
}

impl ScalarUDFImpl for Rate {
    fn name(&self) -> &str {
        "rate"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(FIELDS.clone()))
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_numbers("rate", &["x", "n", "confidence", "multiplier"], arg_types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let columns = float_columns(&args)?;
        let [x, n, confidence, multiplier] = columns.as_slice() else {
            return exec_err!("rate takes 4 arguments, got {}", columns.len());
        };
        let (x, n, multiplier) = (floats(x)?, floats(n)?, floats(multiplier)?);
        let Some(level) = one_confidence("rate", floats(confidence)?)?
            .map(confidence_level)
            .transpose()?
        else {
            return struct_of_floats(&FIELDS, vec![None; x.len()]);
        };
        let rows = each_complete_row([x, n, multiplier], |[x, n, multiplier]| {
            Ok(rate_interval(x, n, level, multiplier)?.map(Vec::from))
        })?;
        struct_of_floats(&FIELDS, rows)
    }

    fn documentation(&self) -> Option<&Documentation> {
        static DOCS: LazyLock<Documentation> = LazyLock::new(|| {
            Documentation::builder(
                DOC_SECTION_STATS,
                "A crude rate x / n * multiplier with its confidence interval as PHE's \
                 calculate_rate: exact Poisson limits below 10 events, Byar's from 10. NULL when \
                 n = 0 or an argument is NULL; an error when x or n is negative.",
                "rate(x, n, confidence, multiplier)",
            )
            .with_argument("x", "the events")
            .with_argument("n", "the population")
            .with_argument("confidence", "0.95, 0.998 (or 95, 99.8)")
            .with_argument("multiplier", "100000 for a rate per 100,000")
            .with_sql_example(
                "```sql\nSELECT area, rate(flagged, population, 0.95, 100000)['upper'] FROM t;\n```",
            )
            .build()
        });
        Some(&DOCS)
    }
}
