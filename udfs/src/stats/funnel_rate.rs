//! `funnel_rate(average, denominator, confidence, multiplier)`: funnel limits of a rate.

use std::sync::LazyLock;

use arrow::datatypes::{DataType, Fields};
use datafusion_common::{Result, exec_err};
use datafusion_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::poisson::rate_funnel_limits;
use super::{
    DOC_SECTION_STATS, coerce_numbers, confidence_level, each_complete_row, float_columns,
    float_fields, floats, one_confidence, struct_of_floats,
};

static FIELDS: LazyLock<Fields> = LazyLock::new(|| float_fields(&["lower", "upper"]));

/// `funnel_rate(average, denominator, confidence, multiplier)` -> `{lower, upper}`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FunnelRate {
    signature: Signature,
}

impl Default for FunnelRate {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl FunnelRate {
    /// The function.
    pub fn new() -> Self {
        Self::default()
    }
}

impl ScalarUDFImpl for FunnelRate {
    fn name(&self) -> &str {
        "funnel_rate"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(FIELDS.clone()))
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_numbers(
            "funnel_rate",
            &["average", "denominator", "confidence", "multiplier"],
            arg_types,
        )
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let columns = float_columns(&args)?;
        let [average, denominator, confidence, multiplier] = columns.as_slice() else {
            return exec_err!("funnel_rate takes 4 arguments, got {}", columns.len());
        };
        let (average, denominator, multiplier) =
            (floats(average)?, floats(denominator)?, floats(multiplier)?);
        let Some(level) = one_confidence("funnel_rate", floats(confidence)?)?
            .map(confidence_level)
            .transpose()?
        else {
            return struct_of_floats(&FIELDS, vec![None; average.len()]);
        };
        let rows = each_complete_row(
            [average, denominator, multiplier],
            |[average, denominator, multiplier]| {
                if average < 0.0 {
                    return exec_err!("funnel_rate: the average rate {average} is negative");
                }
                if multiplier <= 0.0 {
                    return exec_err!("funnel_rate: the multiplier {multiplier} is not positive");
                }
                let expected = average / multiplier * denominator;
                Ok(rate_funnel_limits(expected, level)
                    .map(|limits| limits.iter().map(|l| l * average).collect()))
            },
        )?;
        struct_of_floats(&FIELDS, rows)
    }

    fn documentation(&self) -> Option<&Documentation> {
        static DOCS: LazyLock<Documentation> = LazyLock::new(|| {
            Documentation::builder(
                DOC_SECTION_STATS,
                "Funnel plot limits of a rate (per multiplier) at a denominator, around the \
                 average rate, as PHE's calculate_funnel_limits for statistic 'rate': exact \
                 Poisson limits of the events expected at that denominator, on the same curve \
                 PHE draws through whole numbers of events. For a DSR, pass PHE's derived \
                 denominator, multiplier * events / dsr, and the average sum(events) / \
                 sum(derived denominator) * multiplier. NULL when the expected count is 0.",
                "funnel_rate(average, denominator, confidence, multiplier)",
            )
            .with_argument("average", "the average rate per multiplier, such as 450.2")
            .with_argument("denominator", "the population at which to place the limits")
            .with_argument("confidence", "0.95, 0.998 (or 95, 99.8)")
            .with_argument("multiplier", "100000 for a rate per 100,000")
            .with_sql_example(
                "```sql\nSELECT area, funnel_rate(450.2, population, 0.998, 100000)['upper'] FROM t;\n```",
            )
            .build()
        });
        Some(&DOCS)
    }
}
