//! The statistics EBI analysts publish, as the PHE/OHID indicator methods and NHS "Making Data
//! Count" compute them: Wilson and Byar intervals, directly standardised rates (Dobson), funnel
//! plot limits, XmR charts, and the 2013 European Standard Population.
//!
//! Every numeric argument takes any integer, float or decimal type (DataFusion casts it to
//! Float64); `confidence` is a level such as `0.95` or `0.998`, or `95` and `99.8`, as the PHE
//! functions accept.

mod byar;
mod dispersion;
mod dsr;
mod dsr_events;
mod esp;
mod funnel;
mod funnel_rate;
mod funnel_ratio;
mod funnel_ratio_od;
mod funnel_significance;
mod isr;
mod overdispersion;
mod poisson;
mod rate;
mod wilson;
mod xmr;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, StructArray};
use arrow::datatypes::{DataType, Field, Fields, Float64Type};
use datafusion_common::scalar::ScalarStructBuilder;
use datafusion_common::{Result, ScalarValue, exec_err, plan_err};
use datafusion_expr::{ColumnarValue, ScalarFunctionArgs};
use statrs::distribution::{ContinuousCDF, Normal};

use crate::strings::is_string_type;

pub use byar::{Byar, byar_interval};
pub use dispersion::{Dispersion, DispersionMethod, adjusted_ratio_limits, dispersion};
pub use dsr::{Dsr, DsrSums};
pub use dsr_events::{DsrEvents, PersonsWithEvents, dsr_of_events};
pub use esp::{ESP2013, EspAgeBand, esp_age_band, esp2013};
pub use funnel::{FunnelProportion, funnel_limits};
pub use funnel_rate::FunnelRate;
pub use funnel_ratio::FunnelRatio;
pub use funnel_ratio_od::FunnelRatioOd;
pub use funnel_significance::{FunnelSignificance, significance};
pub use isr::{IndirectKind, IndirectStandardisation, IsrSums};
pub use overdispersion::Overdispersion;
pub use poisson::{
    count_interval, exact_poisson_interval, rate_funnel_limits, ratio_funnel_limits,
};
pub use rate::{Rate, rate_interval};
pub use wilson::{Wilson, wilson_interval};
pub use xmr::{Improvement, SpecialCause, Xmr, XmrPoint, XmrSettings, xmr_chart};

/// The documentation section the statistics functions are listed under.
pub(crate) const DOC_SECTION_STATS: datafusion_expr::DocSection = datafusion_expr::DocSection {
    include: true,
    label: "EBI statistics",
    description: Some(
        "Intervals, standardised rates, funnel limits and SPC charts, as PHE/OHID and NHS \
         Making Data Count compute them",
    ),
};

/// A confidence level as a fraction: levels are given as 0.9-1 or 90-100, as PHE's functions
/// take them; anything else is an error naming it.
pub fn confidence_level(confidence: f64) -> Result<f64> {
    let level = if (90.0..=100.0).contains(&confidence) {
        confidence / 100.0
    } else {
        confidence
    };
    if !(0.9..1.0).contains(&level) {
        return exec_err!(
            "confidence {confidence} is not a level between 0.9 and 1 (or 90 and 100), such as 0.95 or 0.998"
        );
    }
    Ok(level)
}

/// The two-sided normal quantile for a confidence level: `qnorm(c + (1 - c) / 2)`.
pub fn z_score(confidence: f64) -> Result<f64> {
    let level = confidence_level(confidence)?;
    let p = level + (1.0 - level) / 2.0;
    // `Normal::standard` cannot fail; its inverse CDF is statrs's (Boost's erfc inverse).
    Ok(Normal::standard().inverse_cdf(p))
}

/// Float64 struct fields, all nullable, with these names.
pub(crate) fn float_fields(names: &[&str]) -> Fields {
    names
        .iter()
        .map(|name| Field::new(*name, DataType::Float64, true))
        .collect()
}

/// A list of Float64 values: the state of an aggregate that needs every row (an overdispersion's
/// groups, the bands of a DSR of non-independent events).
pub(crate) fn float_list() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)))
}

/// `values` (`None`: NULL) as one [`float_list`] value.
pub(crate) fn float_list_scalar(values: impl Iterator<Item = Option<f64>>) -> ScalarValue {
    let values: Vec<ScalarValue> = values.map(ScalarValue::Float64).collect();
    ScalarValue::List(ScalarValue::new_list_nullable(&values, &DataType::Float64))
}

/// What a statistic's argument must be, for [`coerce_arguments`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Argument {
    /// A number of any numeric type (or NULL), cast to Float64.
    Number,
    /// Text naming one of a few choices, such as a method (any string type or NULL, as Utf8); the
    /// text says what it may be, for the error.
    Choice(&'static str),
    /// A label compared as text whatever its type (a band given as a number or a name).
    Label,
}

/// Coerces a call's arguments by their roles, the first `required` of them required and the rest
/// optional: a wrong count or type is a planning error naming the function and the role.
pub(crate) fn coerce_arguments(
    name: &str,
    roles: &[(&str, Argument)],
    required: usize,
    arg_types: &[DataType],
) -> Result<Vec<DataType>> {
    if !(required..=roles.len()).contains(&arg_types.len()) {
        let names: Vec<&str> = roles.iter().map(|(role, _)| *role).collect();
        let (needed, optional) = names.split_at(required.min(names.len()));
        let count = match optional.len() {
            0 => required.to_string(),
            1 => format!("{required} or {}", roles.len()),
            _ => format!("{required} to {}", roles.len()),
        };
        let optional = optional
            .iter()
            .map(|role| format!("[, {role}"))
            .collect::<String>()
            + &"]".repeat(optional.len());
        return plan_err!(
            "{name} takes {count} arguments ({}{optional}), got {}",
            needed.join(", "),
            arg_types.len()
        );
    }
    arg_types
        .iter()
        .zip(roles)
        .map(|(data_type, (role, argument))| match argument {
            Argument::Number if data_type.is_numeric() || data_type.is_null() => {
                Ok(DataType::Float64)
            }
            Argument::Number => plan_err!("{name}: the {role} must be a number, got {data_type}"),
            Argument::Choice(_) if is_string_type(data_type) || data_type.is_null() => {
                Ok(DataType::Utf8)
            }
            Argument::Choice(choices) => {
                plan_err!("{name}: the {role} must be {choices}, got {data_type}")
            }
            Argument::Label => Ok(DataType::Utf8),
        })
        .collect()
}

/// Every argument is a number: any numeric type (or NULL) is cast to Float64.
pub(crate) fn coerce_numbers(
    name: &str,
    roles: &[&str],
    arg_types: &[DataType],
) -> Result<Vec<DataType>> {
    let roles: Vec<(&str, Argument)> = roles.iter().map(|role| (*role, Argument::Number)).collect();
    coerce_arguments(name, &roles, roles.len(), arg_types)
}

/// The arguments of a call as Float64 arrays of the batch's length.
pub(crate) fn float_columns(args: &ScalarFunctionArgs) -> Result<Vec<ArrayRef>> {
    ColumnarValue::values_to_arrays(&args.args)
}

/// A Float64 column's values, `None` for NULL.
pub(crate) fn floats(array: &ArrayRef) -> Result<&Float64Array> {
    match array.as_primitive_opt::<Float64Type>() {
        Some(values) => Ok(values),
        None => exec_err!("expected Float64, got {}", array.data_type()),
    }
}

/// The confidence level of a call, which must be one value for every row.
pub(crate) fn one_confidence(name: &str, column: &Float64Array) -> Result<Option<f64>> {
    let mut level = None;
    one_value_per_call(name, "confidence", &mut level, column.iter())?;
    Ok(level)
}

/// A Float64 column's value at `row`, `None` for NULL.
pub(crate) fn float_at(column: &Float64Array, row: usize) -> Option<f64> {
    column.is_valid(row).then(|| column.value(row))
}

/// An aggregate's nullable state field `part` of `data_type`, named as DataFusion names them.
pub(crate) fn state_field(
    args: &datafusion_expr::function::StateFieldsArgs,
    part: &str,
    data_type: DataType,
) -> arrow::datatypes::FieldRef {
    Arc::new(Field::new(
        datafusion_expr::utils::format_state_name(args.name, part),
        data_type,
        true,
    ))
}

/// `per_row` applied to each row whose values are all present; a row with a NULL gives `None`.
pub(crate) fn each_complete_row<const N: usize, T>(
    columns: [&Float64Array; N],
    mut per_row: impl FnMut([f64; N]) -> Result<Option<T>>,
) -> Result<Vec<Option<T>>> {
    let rows = columns.first().map_or(0, |column| column.len());
    (0..rows)
        .map(|row| {
            if columns.iter().any(|column| column.is_null(row)) {
                return Ok(None);
            }
            per_row(columns.map(|column| column.value(row)))
        })
        .collect()
}

/// Keeps the one value an argument must have for the whole call or window partition (a
/// confidence, a multiplier, a method, a target): the first non-NULL value, and an error naming
/// both when another differs.
pub(crate) fn one_value_per_call<T: PartialEq + std::fmt::Display>(
    name: &str,
    role: &str,
    slot: &mut Option<T>,
    values: impl Iterator<Item = Option<T>>,
) -> Result<()> {
    for value in values.flatten() {
        match slot {
            None => *slot = Some(value),
            Some(seen) if *seen != value => {
                return exec_err!(
                    "{name}: the {role} must be one value for every row, got {seen} and {value}"
                );
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// One struct value of Float64 `fields` (an aggregate's result): `None` or a value that is not
/// finite is a NULL field, as `struct_of_floats` makes them per row.
pub(crate) fn struct_scalar_of_floats(
    fields: &Fields,
    values: Option<&[f64]>,
) -> Result<ScalarValue> {
    let mut builder = ScalarStructBuilder::new();
    for (index, field) in fields.iter().enumerate() {
        let value = values
            .and_then(|values| values.get(index).copied())
            .filter(|v| v.is_finite());
        builder = builder.with_scalar(Arc::clone(field), ScalarValue::Float64(value));
    }
    builder.build()
}

/// A struct column of Float64 `fields` from per-row results (`None`: a NULL row).
pub(crate) fn struct_of_floats(
    fields: &Fields,
    rows: Vec<Option<Vec<f64>>>,
) -> Result<ColumnarValue> {
    let width = fields.len();
    let mut columns: Vec<Vec<Option<f64>>> = vec![Vec::with_capacity(rows.len()); width];
    let mut valid = Vec::with_capacity(rows.len());
    for row in &rows {
        valid.push(row.is_some());
        for (index, column) in columns.iter_mut().enumerate() {
            column.push(
                row.as_ref()
                    .and_then(|values| values.get(index).copied())
                    .filter(|v| v.is_finite()),
            );
        }
    }
    let arrays: Vec<ArrayRef> = columns
        .into_iter()
        .map(|values| Arc::new(Float64Array::from(values)) as ArrayRef)
        .collect();
    let nulls = valid.iter().any(|v| !v).then(|| valid.into());
    Ok(ColumnarValue::Array(Arc::new(StructArray::try_new(
        fields.clone(),
        arrays,
        nulls,
    )?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn z_scores_are_the_two_sided_normal_quantiles() -> Result<()> {
        // qnorm(0.975) and qnorm(0.999), to R's printed precision.
        assert!((z_score(0.95)? - 1.959_963_984_540_054).abs() < 1e-12);
        assert!((z_score(95.0)? - 1.959_963_984_540_054).abs() < 1e-12);
        assert!((z_score(0.998)? - 3.090_232_306_167_813).abs() < 1e-12);
        assert!((z_score(99.8)? - 3.090_232_306_167_813).abs() < 1e-12);
        for bad in [0.5, 1.0, 80.0, 101.0, -0.95, f64::NAN] {
            assert!(z_score(bad).is_err(), "{bad}");
        }
        Ok(())
    }

    #[test]
    fn arguments_are_coerced_by_role_and_a_wrong_call_says_what_it_takes() -> Result<()> {
        let roles = [
            ("observed", Argument::Number),
            ("method", Argument::Choice("'SHMI' or 'CQC'")),
            ("band", Argument::Label),
            ("trim", Argument::Number),
            ("fix", Argument::Number),
        ];
        let coerced = coerce_arguments(
            "f",
            &roles,
            3,
            &[DataType::Int32, DataType::Utf8View, DataType::Int64],
        )?;
        assert_eq!(coerced, [DataType::Float64, DataType::Utf8, DataType::Utf8]);
        let message = |types: &[DataType]| {
            coerce_arguments("f", &roles, 3, types)
                .err()
                .map(|e| e.strip_backtrace())
        };
        assert_eq!(
            message(&[DataType::Int32]).as_deref(),
            Some(
                "Error during planning: f takes 3 to 5 arguments (observed, method, band[, trim[, fix]]), got 1"
            )
        );
        assert_eq!(
            message(&[DataType::Int32, DataType::Int64, DataType::Int64]).as_deref(),
            Some("Error during planning: f: the method must be 'SHMI' or 'CQC', got Int64")
        );
        assert_eq!(
            message(&[DataType::Utf8, DataType::Utf8, DataType::Utf8]).as_deref(),
            Some("Error during planning: f: the observed must be a number, got Utf8")
        );
        let numbers = coerce_numbers("g", &["x", "n"], &[DataType::Int8]).err();
        assert_eq!(
            numbers.map(|e| e.strip_backtrace()).as_deref(),
            Some("Error during planning: g takes 2 arguments (x, n), got 1")
        );
        Ok(())
    }
}
