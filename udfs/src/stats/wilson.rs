//! `wilson(x, n, confidence)`: a proportion with its Wilson score interval.

use std::sync::LazyLock;

use arrow::datatypes::{DataType, Fields};
use datafusion_common::{Result, exec_err};
use datafusion_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::{
    DOC_SECTION_STATS, coerce_numbers, float_columns, float_fields, floats, one_confidence,
    struct_of_floats, z_score,
};

static FIELDS: LazyLock<Fields> = LazyLock::new(|| float_fields(&["value", "lower", "upper"]));

/// The proportion `x / n` and its Wilson score interval for the two-sided normal quantile `z`,
/// as PHE's `wilson_lower`/`wilson_upper` compute it:
/// `(2x + z² ∓ z·sqrt(z² + 4x(1 - x/n))) / (2(n + z²))`. `None` when `n` is 0 (no proportion).
pub fn wilson_interval(x: f64, n: f64, z: f64) -> Result<Option<[f64; 3]>> {
    if x < 0.0 || n < 0.0 || x > n || x.is_nan() || n.is_nan() {
        return exec_err!("wilson: {x} of {n} is not a proportion (need 0 <= x <= n)");
    }
    if n == 0.0 {
        return Ok(None);
    }
    let z2 = z * z;
    let spread = z * (z2 + 4.0 * x * (1.0 - x / n)).sqrt();
    let denominator = 2.0 * (n + z2);
    Ok(Some([
        x / n,
        (2.0 * x + z2 - spread) / denominator,
        (2.0 * x + z2 + spread) / denominator,
    ]))
}

/// `wilson(x, n, confidence)` -> `{value, lower, upper}`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Wilson {
    signature: Signature,
}

impl Default for Wilson {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl Wilson {
    /// The function.
    pub fn new() -> Self {
        Self::default()
    }
}

impl ScalarUDFImpl for Wilson {
    fn name(&self) -> &str {
        "wilson"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(FIELDS.clone()))
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_numbers("wilson", &["x", "n", "confidence"], arg_types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let columns = float_columns(&args)?;
        let [x, n, confidence] = columns.as_slice() else {
            return exec_err!("wilson takes 3 arguments, got {}", columns.len());
        };
        let (x, n) = (floats(x)?, floats(n)?);
        let Some(z) = one_confidence("wilson", floats(confidence)?)?
            .map(z_score)
            .transpose()?
        else {
            return struct_of_floats(&FIELDS, vec![None; x.len()]);
        };
        let rows = x
            .iter()
            .zip(n.iter())
            .map(|(x, n)| match (x, n) {
                (Some(x), Some(n)) => Ok(wilson_interval(x, n, z)?.map(Vec::from)),
                _ => Ok(None),
            })
            .collect::<Result<_>>()?;
        struct_of_floats(&FIELDS, rows)
    }

    fn documentation(&self) -> Option<&Documentation> {
        static DOCS: LazyLock<Documentation> = LazyLock::new(|| {
            Documentation::builder(
                DOC_SECTION_STATS,
                "The proportion x/n with its Wilson score confidence interval (0..1), as PHE's \
                 wilson_lower/wilson_upper compute it. NULL when n is 0 or an argument is NULL; \
                 an error when x < 0 or x > n.",
                "wilson(x, n, confidence)",
            )
            .with_argument("x", "cases meeting the condition (a count)")
            .with_argument("n", "cases in all (a count)")
            .with_argument("confidence", "0.95, 0.998 (or 95, 99.8)")
            .with_sql_example(
                "```sql\nSELECT wilson(flagged, spine_imaging, 0.95)['lower'] FROM t;\n```",
            )
            .build()
        });
        Some(&DOCS)
    }
}
