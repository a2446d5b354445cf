//! Aggregate `overdispersion(observed, expected, method[, trim])` -> `{phi, tau2, groups}`.

use std::sync::LazyLock;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use arrow::datatypes::{DataType, FieldRef, Fields};
use datafusion_common::{Result, ScalarValue, exec_err};
use datafusion_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion_expr::{Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility};

use super::dispersion::{DispersionMethod, dispersion};
use super::{
    Argument, DOC_SECTION_STATS, coerce_arguments, float_fields, float_list, float_list_scalar,
    floats, one_value_per_call, state_field, struct_scalar_of_floats,
};
use crate::strings::collect_strings;

/// FunnelPlotR's default `trim_by`: 10% at each end.
const DEFAULT_TRIM: f64 = 0.1;

static FIELDS: LazyLock<Fields> = LazyLock::new(|| float_fields(&["phi", "tau2", "groups"]));

/// `overdispersion(observed, expected, method[, trim])`: phi and tau² over the groups (rows) of
/// a call, as FunnelPlotR's `phi` and `tau2` for standardised ratios.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Overdispersion {
    signature: Signature,
}

impl Default for Overdispersion {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl Overdispersion {
    /// The function.
    pub fn new() -> Self {
        Self::default()
    }
}

impl AggregateUDFImpl for Overdispersion {
    fn name(&self) -> &str {
        "overdispersion"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(FIELDS.clone()))
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let roles = [
            ("observed", Argument::Number),
            ("expected", Argument::Number),
            ("method", Argument::Choice(DispersionMethod::CHOICES)),
            ("trim", Argument::Number),
        ];
        coerce_arguments("overdispersion", &roles, 3, arg_types)
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::<OverdispersionAccumulator>::default())
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            state_field(&args, "observed", float_list()),
            state_field(&args, "expected", float_list()),
            state_field(&args, "method", DataType::Utf8),
            state_field(&args, "trim", DataType::Float64),
        ])
    }

    fn documentation(&self) -> Option<&Documentation> {
        static DOCS: LazyLock<Documentation> =
            LazyLock::new(|| {
                Documentation::builder(
                DOC_SECTION_STATS,
                "Aggregate over groups (one row per provider): how far their standardised ratios \
                 spread beyond what Poisson variation gives, as FunnelPlotR estimates it for \
                 standardised ratios. 'SHMI': z = sqrt(E) * ln(O / E), the groups ranked in the \
                 outer trim parts left out; 'CQC': z = 2 * (sqrt(O) - sqrt(E)), z-scores beyond \
                 the trim and 1 - trim quantiles (R's type 7) set to them. phi = mean(z^2); \
                 tau2 = (n * phi - (n - 1)) / (sum(w) - sum(w^2) / sum(w)), w = E (SHMI) or 4E \
                 (CQC), 0 when n * phi < n - 1. groups is n, the groups used. Groups with a \
                 NULL or non-positive expected count are left out. Pass phi and tau2 to \
                 funnel_ratio_od.",
                "overdispersion(observed, expected, method[, trim])",
            )
            .with_argument("observed", "the group's observed count")
            .with_argument("expected", "the group's expected count")
            .with_argument("method", "'SHMI' or 'CQC'")
            .with_argument("trim", "the share trimmed at each end, 0.1 (10%) if not given")
            .with_sql_example(
                "```sql\nSELECT overdispersion(observed, expected, 'SHMI') FROM ratios;\n```",
            )
            .build()
            });
        Some(&DOCS)
    }
}

#[derive(Debug, Default)]
struct OverdispersionAccumulator {
    groups: Vec<(f64, f64)>,
    method: Option<DispersionMethod>,
    trim: Option<f64>,
}

impl OverdispersionAccumulator {
    fn add_groups(&mut self, observed: &Float64Array, expected: &Float64Array) {
        let rows = observed.iter().zip(expected.iter());
        self.groups.extend(rows.filter_map(|(o, e)| Some((o?, e?))));
    }

    fn keep_method(&mut self, methods: &dyn Array) -> Result<()> {
        let parsed = collect_strings(methods)?
            .into_iter()
            .map(|method| method.map(DispersionMethod::parse).transpose())
            .collect::<Result<Vec<_>>>()?;
        one_value_per_call(
            "overdispersion",
            "method",
            &mut self.method,
            parsed.into_iter(),
        )
    }
}

impl Accumulator for OverdispersionAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let (observed, expected, method, trim) = match values {
            [observed, expected, method] => (observed, expected, method, None),
            [observed, expected, method, trim] => (observed, expected, method, Some(trim)),
            _ => {
                return exec_err!(
                    "overdispersion takes 3 or 4 arguments, got {}",
                    values.len()
                );
            }
        };
        self.add_groups(floats(observed)?, floats(expected)?);
        self.keep_method(method.as_ref())?;
        if let Some(trim) = trim {
            one_value_per_call(
                "overdispersion",
                "trim",
                &mut self.trim,
                floats(trim)?.iter(),
            )?;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            float_list_scalar(self.groups.iter().map(|(observed, _)| Some(*observed))),
            float_list_scalar(self.groups.iter().map(|(_, expected)| Some(*expected))),
            ScalarValue::Utf8(self.method.map(|m| m.name().to_owned())),
            ScalarValue::Float64(self.trim),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [observed, expected, method, trim] = states else {
            return exec_err!(
                "overdispersion: expected 4 state columns, got {}",
                states.len()
            );
        };
        let (observed, expected) = (observed.as_list::<i32>(), expected.as_list::<i32>());
        for (o, e) in observed.iter().zip(expected.iter()) {
            if let (Some(o), Some(e)) = (o, e) {
                self.add_groups(floats(&o)?, floats(&e)?);
            }
        }
        self.keep_method(method.as_ref())?;
        one_value_per_call(
            "overdispersion",
            "trim",
            &mut self.trim,
            floats(trim)?.iter(),
        )
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let Some(method) = self.method else {
            return struct_scalar_of_floats(&FIELDS, None);
        };
        let found = dispersion(&self.groups, method, self.trim.unwrap_or(DEFAULT_TRIM))?;
        let values = found.map(|d| [d.phi, d.tau2, d.groups as f64]);
        struct_scalar_of_floats(&FIELDS, values.as_ref().map(|v| v.as_slice()))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.groups.capacity() * std::mem::size_of::<(f64, f64)>()
    }
}
