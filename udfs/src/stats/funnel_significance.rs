//! `funnel_significance(observed, denominator, baseline)`: a funnel point's outlier level in
//! PHE's words.

use std::sync::{Arc, LazyLock};

use arrow::array::StringArray;
use arrow::datatypes::DataType;
use datafusion_common::{Result, exec_err};
use datafusion_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::poisson::count_interval;
use super::{DOC_SECTION_STATS, coerce_numbers, each_complete_row, float_columns, floats};

/// The two levels PHE's funnels are drawn at, the outer first.
const LEVELS: [(f64, &str); 2] = [(0.998, "0.001"), (0.95, "0.025")];

/// How `observed / denominator` stands against `baseline`, as PHE's `assign_funnel_significance`
/// for ratios and rates: `High (0.001)` when the baseline is below the point's 99.8% lower
/// limit, else `High (0.025)` below its 95% lower limit, `Low (0.001)` and `Low (0.025)` the
/// same way above its upper limits, else `Not significant`. The point's limits are its count's
/// (exact below 10 events, Byar's from 10) divided by the denominator. `None` when the
/// denominator is not positive.
pub fn significance(observed: f64, denominator: f64, baseline: f64) -> Result<Option<String>> {
    if observed < 0.0 || observed.is_nan() {
        return exec_err!("funnel_significance: the observed count {observed} is negative");
    }
    if denominator <= 0.0 || denominator.is_nan() {
        return Ok(None);
    }
    let mut limits = Vec::with_capacity(LEVELS.len());
    for (level, tail) in LEVELS {
        let [lower, upper] = count_interval(observed, level)?;
        limits.push((lower / denominator, upper / denominator, tail));
    }
    let label = limits
        .iter()
        .find(|(lower, _, _)| baseline < *lower)
        .map(|(_, _, tail)| format!("High ({tail})"))
        .or_else(|| {
            limits
                .iter()
                .find(|(_, upper, _)| baseline > *upper)
                .map(|(_, _, tail)| format!("Low ({tail})"))
        })
        .unwrap_or_else(|| "Not significant".to_owned());
    Ok(Some(label))
}

/// `funnel_significance(observed, denominator, baseline)` -> text.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FunnelSignificance {
    signature: Signature,
}

impl Default for FunnelSignificance {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl FunnelSignificance {
    /// The function.
    pub fn new() -> Self {
        Self::default()
    }
}

impl ScalarUDFImpl for FunnelSignificance {
    fn name(&self) -> &str {
        "funnel_significance"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_numbers(
            "funnel_significance",
            &["observed", "denominator", "baseline"],
            arg_types,
        )
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let columns = float_columns(&args)?;
        let [observed, denominator, baseline] = columns.as_slice() else {
            return exec_err!(
                "funnel_significance takes 3 arguments, got {}",
                columns.len()
            );
        };
        let labels = each_complete_row(
            [floats(observed)?, floats(denominator)?, floats(baseline)?],
            |[observed, denominator, baseline]| significance(observed, denominator, baseline),
        )?;
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(labels))))
    }

    fn documentation(&self) -> Option<&Documentation> {
        static DOCS: LazyLock<Documentation> = LazyLock::new(|| {
            Documentation::builder(
                DOC_SECTION_STATS,
                "A funnel point's significance in PHE's words: 'High (0.001)', 'High (0.025)', \
                 'Low (0.001)', 'Low (0.025)' or 'Not significant', as PHE's \
                 assign_funnel_significance for ratios and rates: the baseline against the \
                 point's 99.8% and 95% limits (its count's, exact below 10 events and Byar's from \
                 10, over the denominator). For an indirectly standardised ratio pass the \
                 expected count and baseline 1; for a rate the population (for a DSR, PHE's \
                 derived denominator) and the average as a fraction. PHE reports DSRs under 10 \
                 events as not applicable: use CASE for that. NULL when the denominator <= 0.",
                "funnel_significance(observed, denominator, baseline)",
            )
            .with_argument("observed", "the point's events")
            .with_argument("denominator", "its expected count (ratios) or population (rates)")
            .with_argument("baseline", "1 for ratios; the average rate as a fraction for rates")
            .with_sql_example(
                "```sql\nSELECT provider, funnel_significance(observed, expected, 1) FROM isr_by_provider;\n```",
            )
            .build()
        });
        Some(&DOCS)
    }
}
