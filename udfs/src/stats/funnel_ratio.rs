//! `funnel_ratio(expected, confidence)`: funnel limits of an observed/expected ratio.

use std::sync::LazyLock;

use arrow::datatypes::{DataType, Fields};
use datafusion_common::{Result, exec_err};
use datafusion_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::poisson::ratio_funnel_limits;
use super::{
    DOC_SECTION_STATS, coerce_numbers, confidence_level, each_complete_row, float_columns,
    float_fields, floats, one_confidence, struct_of_floats,
};

static FIELDS: LazyLock<Fields> = LazyLock::new(|| float_fields(&["lower", "upper"]));

/// `funnel_ratio(expected, confidence)` -> `{lower, upper}`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FunnelRatio {
    signature: Signature,
}

impl Default for FunnelRatio {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl FunnelRatio {
    /// The function.
    pub fn new() -> Self {
        Self::default()
    }
}

impl ScalarUDFImpl for FunnelRatio {
    fn name(&self) -> &str {
        "funnel_ratio"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(FIELDS.clone()))
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_numbers("funnel_ratio", &["expected", "confidence"], arg_types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let columns = float_columns(&args)?;
        let [expected, confidence] = columns.as_slice() else {
            return exec_err!("funnel_ratio takes 2 arguments, got {}", columns.len());
        };
        let expected = floats(expected)?;
        let Some(level) = one_confidence("funnel_ratio", floats(confidence)?)?
            .map(confidence_level)
            .transpose()?
        else {
            return struct_of_floats(&FIELDS, vec![None; expected.len()]);
        };
        let rows = each_complete_row([expected], |[expected]| {
            Ok(ratio_funnel_limits(expected, level)?.map(Vec::from))
        })?;
        struct_of_floats(&FIELDS, rows)
    }

    fn documentation(&self) -> Option<&Documentation> {
        static DOCS: LazyLock<Documentation> = LazyLock::new(|| {
            Documentation::builder(
                DOC_SECTION_STATS,
                "Funnel plot limits around 1 of an observed/expected ratio (an indirectly \
                 standardised ratio) at an expected count: the exact Poisson limits \
                 qgamma(a/2, E) / E and qgamma(1 - a/2, E + 1) / E, as FunnelPlotR's unadjusted \
                 limits for standardised ratios. Multiply by 100 for ratios shown as 100 = \
                 expected. NULL when expected <= 0.",
                "funnel_ratio(expected, confidence)",
            )
            .with_argument("expected", "the expected count at which to place the limits")
            .with_argument("confidence", "0.95, 0.998 (or 95, 99.8)")
            .with_sql_example(
                "```sql\nSELECT provider, observed / expected AS ratio,\n       funnel_ratio(expected, 0.998)['upper'] AS upper_998 FROM isr_by_provider;\n```",
            )
            .build()
        });
        Some(&DOCS)
    }
}
