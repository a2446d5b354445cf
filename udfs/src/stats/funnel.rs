//! `funnel_proportion(baseline, n, confidence)`: funnel plot control limits for a proportion.

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

/// The funnel limits at denominator `n` around the proportion `baseline`, by the Wilson score
/// method of the PHE/OHID Fingertips technical guidance (PHEindicatormethods'
/// `sigma_adjustment`): the proportions whose Wilson interval at `n` just reaches the baseline,
/// the roots of `a·p² + b·p + c = 0` with `a = 1/z² + 1/n`, kept within 0..1 as PHE's funnel
/// plots keep them (at small `n` no proportion's interval reaches the baseline and the roots
/// leave that range). `None` when `n` is not positive.
pub fn funnel_limits(baseline: f64, n: f64, z: f64) -> Result<Option<[f64; 2]>> {
    if !(0.0..=1.0).contains(&baseline) {
        return exec_err!(
            "funnel_proportion: the baseline {baseline} is not a proportion (0 to 1)"
        );
    }
    if n <= 0.0 || n.is_nan() {
        return Ok(None);
    }
    let z2 = z * z;
    let scaled = baseline * (n / z2 + 1.0);
    let quadratic = 1.0 / z2 + 1.0 / n;
    let radicand = (8.0 * scaled).powi(2)
        - 64.0
            * quadratic
            * baseline
            * (n * (baseline * (n / z2 + 2.0) - 1.0) + z2 * (baseline - 1.0));
    let half_width = radicand.max(0.0).sqrt() / 8.0;
    Ok(Some([
        ((scaled - half_width) / quadratic / n).clamp(0.0, 1.0),
        ((scaled + half_width) / quadratic / n).clamp(0.0, 1.0),
    ]))
}

/// `funnel_proportion(baseline, n, confidence)` -> `{lower, upper}`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FunnelProportion {
    signature: Signature,
}

impl Default for FunnelProportion {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl FunnelProportion {
    /// The function.
    pub fn new() -> Self {
        Self::default()
    }
}

impl ScalarUDFImpl for FunnelProportion {
    fn name(&self) -> &str {
        "funnel_proportion"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(FIELDS.clone()))
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_numbers(
            "funnel_proportion",
            &["baseline", "n", "confidence"],
            arg_types,
        )
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let columns = float_columns(&args)?;
        let [baseline, n, confidence] = columns.as_slice() else {
            return exec_err!("funnel_proportion takes 3 arguments, got {}", columns.len());
        };
        let (baseline, n) = (floats(baseline)?, floats(n)?);
        let level = one_confidence("funnel_proportion", floats(confidence)?)?;
        let Some(z) = level.map(z_score).transpose()? else {
            return struct_of_floats(&FIELDS, vec![None; n.len()]);
        };
        let rows = baseline
            .iter()
            .zip(n.iter())
            .map(|(baseline, n)| match (baseline, n) {
                (Some(baseline), Some(n)) => Ok(funnel_limits(baseline, n, z)?.map(Vec::from)),
                _ => Ok(None),
            })
            .collect::<Result<_>>()?;
        struct_of_floats(&FIELDS, rows)
    }

    fn documentation(&self) -> Option<&Documentation> {
        static DOCS: LazyLock<Documentation> = LazyLock::new(|| {
            Documentation::builder(
                DOC_SECTION_STATS,
                "Funnel plot control limits (0..1) for a proportion at denominator n around a \
                 baseline proportion, by the Wilson score method of the PHE/OHID indicator \
                 methods (PHEindicatormethods' sigma_adjustment), kept within 0..1. Use 0.95 and \
                 0.998 for the conventional two pairs. NULL when n <= 0.",
                "funnel_proportion(baseline, n, confidence)",
            )
            .with_argument("baseline", "the overall proportion, such as sum(x) / sum(n)")
            .with_argument("n", "the denominator at which to place the limits")
            .with_argument("confidence", "0.95, 0.998 (or 95, 99.8)")
            .with_sql_example(
                "```sql\nSELECT funnel_proportion(0.12, spine_imaging, 0.998)['upper'] FROM t;\n```",
            )
            .build()
        });
        Some(&DOCS)
    }
}
