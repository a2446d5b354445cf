//! `funnel_ratio_od(expected, confidence, method, phi, tau2)`: funnel limits of a standardised
//! ratio widened for overdispersion.

use std::sync::LazyLock;

use arrow::datatypes::{DataType, Fields};
use datafusion_common::{Result, exec_err};
use datafusion_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::dispersion::{Dispersion, DispersionMethod, adjusted_ratio_limits};
use super::{
    Argument, DOC_SECTION_STATS, coerce_arguments, confidence_level, float_at, float_fields,
    floats, one_confidence, struct_of_floats,
};
use crate::strings::collect_strings;

static FIELDS: LazyLock<Fields> = LazyLock::new(|| float_fields(&["lower", "upper"]));

const ROLES: [(&str, Argument); 5] = [
    ("expected", Argument::Number),
    ("confidence", Argument::Number),
    ("method", Argument::Choice(DispersionMethod::CHOICES)),
    ("phi", Argument::Number),
    ("tau2", Argument::Number),
];

/// `funnel_ratio_od(expected, confidence, method, phi, tau2)` -> `{lower, upper}`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FunnelRatioOd {
    signature: Signature,
}

impl Default for FunnelRatioOd {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl FunnelRatioOd {
    /// The function.
    pub fn new() -> Self {
        Self::default()
    }
}

impl ScalarUDFImpl for FunnelRatioOd {
    fn name(&self) -> &str {
        "funnel_ratio_od"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(FIELDS.clone()))
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_arguments("funnel_ratio_od", &ROLES, ROLES.len(), arg_types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let columns = ColumnarValue::values_to_arrays(&args.args)?;
        let [expected, confidence, methods, phi, tau2] = columns.as_slice() else {
            return exec_err!("funnel_ratio_od takes 5 arguments, got {}", columns.len());
        };
        let expected = floats(expected)?;
        let methods = collect_strings(methods.as_ref())?;
        let level = one_confidence("funnel_ratio_od", floats(confidence)?)?
            .map(confidence_level)
            .transpose()?;
        let (Some(level), [phi, tau2]) = (level, [floats(phi)?, floats(tau2)?]) else {
            return struct_of_floats(&FIELDS, vec![None; expected.len()]);
        };
        let rows = (0..expected.len())
            .map(|row| {
                let method = methods.get(row).copied().flatten();
                let (Some(e), Some(phi), Some(tau2), Some(method)) = (
                    float_at(expected, row),
                    float_at(phi, row),
                    float_at(tau2, row),
                    method,
                ) else {
                    return Ok(None);
                };
                let dispersion = Dispersion {
                    phi,
                    tau2,
                    groups: 0,
                };
                let method = DispersionMethod::parse(method)?;
                Ok(adjusted_ratio_limits(e, level, method, dispersion)?.map(Vec::from))
            })
            .collect::<Result<Vec<_>>>()?;
        struct_of_floats(&FIELDS, rows)
    }

    fn documentation(&self) -> Option<&Documentation> {
        static DOCS: LazyLock<Documentation> = LazyLock::new(|| {
            Documentation::builder(
                DOC_SECTION_STATS,
                "Funnel limits of a standardised ratio at an expected count, widened by the \
                 between-group variance tau2 from overdispersion(...), as FunnelPlotR draws \
                 them: 'SHMI' exp(±z * sqrt(1/E + tau2)); 'CQC' (1 ± z * sqrt(1/(4E) + \
                 tau2))^2, the square-root scale's limits squared back to ratios (FunnelPlotR \
                 leaves them unsquared, its open issue #33), a lower limit below 0 there being \
                 0. When phi <= 1 there is no overdispersion and the limits are funnel_ratio's \
                 exact Poisson limits, as FunnelPlotR then draws. NULL when expected <= 0.",
                "funnel_ratio_od(expected, confidence, method, phi, tau2)",
            )
            .with_argument("expected", "the expected count at which to place the limits")
            .with_argument("confidence", "0.95, 0.998 (or 95, 99.8)")
            .with_argument("method", "'SHMI' or 'CQC', as given to overdispersion")
            .with_argument("phi", "overdispersion(...)['phi']")
            .with_argument("tau2", "overdispersion(...)['tau2']")
            .with_sql_example(
                "```sql\nWITH od AS (SELECT overdispersion(observed, expected, 'SHMI') AS d FROM ratios)\nSELECT provider, observed / expected,\n       funnel_ratio_od(expected, 0.998, 'SHMI', od.d['phi'], od.d['tau2'])\nFROM ratios CROSS JOIN od;\n```",
            )
            .build()
        });
        Some(&DOCS)
    }
}
