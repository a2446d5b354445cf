//! `byar(o, confidence)`: Byar's approximation to the Poisson confidence interval of a count.

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

static FIELDS: LazyLock<Fields> = LazyLock::new(|| float_fields(&["lower", "upper"]));

/// Byar's limits of a count `o` for the two-sided normal quantile `z`, as PHE's
/// `byars_lower`/`byars_upper`: `o(1 - 1/(9o) - z/(3√o))³` and
/// `(o+1)(1 - 1/(9(o+1)) + z/(3√(o+1)))³`. At `o = 0` the lower formula is `0 × ∞`; its limit,
/// and the exact Poisson lower limit, is 0.
pub fn byar_interval(o: f64, z: f64) -> Result<[f64; 2]> {
    if o < 0.0 || o.is_nan() {
        return exec_err!("byar: the count {o} is negative");
    }
    let lower = if o == 0.0 {
        0.0
    } else {
        o * (1.0 - 1.0 / (9.0 * o) - z / (3.0 * o.sqrt())).powi(3)
    };
    let next = o + 1.0;
    let upper = next * (1.0 - 1.0 / (9.0 * next) + z / (3.0 * next.sqrt())).powi(3);
    Ok([lower, upper])
}

/// `byar(o, confidence)` -> `{lower, upper}`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Byar {
    signature: Signature,
}

impl Default for Byar {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl Byar {
    /// The function.
    pub fn new() -> Self {
        Self::default()
    }
}

impl ScalarUDFImpl for Byar {
    fn name(&self) -> &str {
        "byar"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(FIELDS.clone()))
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_numbers("byar", &["o", "confidence"], arg_types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let columns = float_columns(&args)?;
        let [counts, confidence] = columns.as_slice() else {
            return exec_err!("byar takes 2 arguments, got {}", columns.len());
        };
        let counts = floats(counts)?;
        let Some(z) = one_confidence("byar", floats(confidence)?)?
            .map(z_score)
            .transpose()?
        else {
            return struct_of_floats(&FIELDS, vec![None; counts.len()]);
        };
        let rows = counts
            .iter()
            .map(|o| o.map(|o| byar_interval(o, z).map(Vec::from)).transpose())
            .collect::<Result<_>>()?;
        struct_of_floats(&FIELDS, rows)
    }

    fn documentation(&self) -> Option<&Documentation> {
        static DOCS: LazyLock<Documentation> = LazyLock::new(|| {
            Documentation::builder(
                DOC_SECTION_STATS,
                "Byar's approximation to the Poisson confidence interval of a count, as PHE's \
                 byars_lower/byars_upper (the lower limit of 0 is 0). Divide by a population and \
                 multiply for a crude rate's interval.",
                "byar(o, confidence)",
            )
            .with_argument("o", "the observed count")
            .with_argument("confidence", "0.95, 0.998 (or 95, 99.8)")
            .with_sql_example(
                "```sql\nSELECT byar(flagged, 0.95)['upper'] / population * 100000 FROM t;\n```",
            )
            .build()
        });
        Some(&DOCS)
    }
}
