//! Window `xmr(value, improvement) OVER (ORDER BY ...)`: an XmR (individuals) chart as NHS
//! "Making Data Count" computes it.

use std::sync::{Arc, LazyLock};

use arrow::array::{ArrayRef, Float64Array, StringArray, StructArray};
use arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion_common::{Result, exec_err, plan_err};
use datafusion_expr::function::{PartitionEvaluatorArgs, WindowUDFFieldArgs};
use datafusion_expr::{Documentation, PartitionEvaluator, Signature, Volatility, WindowUDFImpl};

use super::{DOC_SECTION_STATS, floats};
use crate::strings::{collect_strings, is_string_type};

/// Process limits sit this many average moving ranges from the mean (3 sigma for an XmR chart).
const LIMIT: f64 = 2.66;
/// Moving ranges above this many times their average are screened out before the average is
/// taken again.
const MR_SCREEN: f64 = 3.267;
/// Points in a run on one side of the mean that make a shift.
const SHIFT: usize = 7;
/// Points that make a trend (6 steps all up or all down).
const TREND: usize = 7;

static FIELDS: LazyLock<Fields> = LazyLock::new(|| {
    Fields::from(vec![
        Field::new("mean", DataType::Float64, true),
        Field::new("lpl", DataType::Float64, true),
        Field::new("upl", DataType::Float64, true),
        Field::new("special_cause", DataType::Utf8, true),
    ])
});

/// Which way a special cause points, given the direction that is an improvement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecialCause {
    /// On the side of the mean that is better.
    Improvement,
    /// On the other side (or at the mean).
    Concern,
}

impl SpecialCause {
    fn label(self) -> &'static str {
        match self {
            Self::Improvement => "improvement",
            Self::Concern => "concern",
        }
    }
}

/// One point of an XmR chart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct XmrPoint {
    /// The mean of the series.
    pub mean: f64,
    /// Lower process limit: mean - 2.66 × average moving range.
    pub lpl: f64,
    /// Upper process limit: mean + 2.66 × average moving range.
    pub upl: f64,
    /// `None`: common cause variation.
    pub special_cause: Option<SpecialCause>,
}

/// The XmR chart of `values` (in time order) as NHSRplotthedots computes it for a series with no
/// rebase or fixed baseline: the mean; the average moving range, taken again without the moving
/// ranges at or above 3.267 times it; limits 2.66 average moving ranges from the mean; and a
/// special cause where a point is outside the limits, part of 7 points on one side of the mean,
/// part of 7 points each higher (or each lower) than the one before, or one of two out of three
/// points on one side of the mean beyond 2 sigma (but inside the limits). A special cause is an
/// improvement when the point lies on the improving side of the mean.
///
/// A flat series (no variation) has its limits at the mean and no special cause. Unlike
/// NHSRplotthedots, whose run test counts only rising trends, a falling trend is a special cause
/// too, as Making Data Count's guidance says.
pub fn xmr_chart(values: &[f64], improvement_is_increase: bool) -> Vec<XmrPoint> {
    let n = values.len();
    if n == 0 {
        return Vec::new();
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let ranges: Vec<f64> = values.windows(2).map(|w| (w[1] - w[0]).abs()).collect();
    let average = |ranges: &mut dyn Iterator<Item = f64>| {
        let (sum, count) = ranges.fold((0.0, 0usize), |(s, c), r| (s + r, c + 1));
        (count > 0).then(|| sum / count as f64)
    };
    let first = average(&mut ranges.iter().copied());
    let amr = match first {
        Some(amr) if amr > 0.0 => {
            average(&mut ranges.iter().copied().filter(|&r| r < MR_SCREEN * amr))
        }
        other => other,
    };
    let Some(amr) = amr else {
        // One point: a mean, but no moving range to set limits by.
        return vec![XmrPoint {
            mean,
            lpl: f64::NAN,
            upl: f64::NAN,
            special_cause: None,
        }];
    };
    let (lpl, upl) = (mean - LIMIT * amr, mean + LIMIT * amr);
    let near = 2.0 * LIMIT / 3.0 * amr;
    let outside: Vec<bool> = values.iter().map(|&y| y > upl || y < lpl).collect();
    let side: Vec<i8> = values
        .iter()
        .map(|&y| {
            if y > mean {
                1
            } else if y < mean {
                -1
            } else {
                0
            }
        })
        .collect();
    let close: Vec<bool> = values
        .iter()
        .zip(&outside)
        .map(|(&y, &out)| !out && (y < mean - near || y > mean + near))
        .collect();

    let mut special = outside.clone();
    // Shifts: a run of 7 on one side; every point of it (and of any longer run) is marked.
    for end in SHIFT - 1..n {
        let run = &side[end + 1 - SHIFT..=end];
        if run[0] != 0 && run.iter().all(|&s| s == run[0]) {
            special[end + 1 - SHIFT..=end]
                .iter_mut()
                .for_each(|s| *s = true);
        }
    }
    // Trends: 7 points each strictly above (or below) the one before.
    for end in TREND - 1..n {
        let steps = values[end + 1 - TREND..=end].windows(2);
        let rising = steps.clone().all(|w| w[1] > w[0]);
        let falling = steps.clone().all(|w| w[1] < w[0]);
        if rising || falling {
            special[end + 1 - TREND..=end]
                .iter_mut()
                .for_each(|s| *s = true);
        }
    }
    // Two of three beyond 2 sigma: a window of three points all on one side of the mean with at
    // least two close to the limits marks those close points.
    for start in 0..n.saturating_sub(2) {
        let window = start..start + 3;
        let one_side = side[window.clone()]
            .iter()
            .map(|&s| i32::from(s))
            .sum::<i32>()
            .abs()
            == 3;
        let near_limits = close[window.clone()].iter().filter(|&&c| c).count() >= 2;
        if one_side && near_limits {
            for point in window {
                special[point] |= close[point];
            }
        }
    }
    let better = if improvement_is_increase { 1 } else { -1 };
    special
        .iter()
        .zip(&side)
        .map(|(&special, &side)| XmrPoint {
            mean,
            lpl,
            upl,
            special_cause: special.then_some(if side == better {
                SpecialCause::Improvement
            } else {
                SpecialCause::Concern
            }),
        })
        .collect()
}

/// `xmr(value, improvement)` -> `{mean, lpl, upl, special_cause}`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Xmr {
    signature: Signature,
}

impl Default for Xmr {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl Xmr {
    /// The function.
    pub fn new() -> Self {
        Self::default()
    }
}

impl WindowUDFImpl for Xmr {
    fn name(&self) -> &str {
        "xmr"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [value, improvement] => {
                let value = if value.is_numeric() || value.is_null() {
                    DataType::Float64
                } else {
                    return plan_err!("xmr: the value must be a number, got {value}");
                };
                let improvement = if is_string_type(improvement) || improvement.is_null() {
                    DataType::Utf8
                } else {
                    return plan_err!(
                        "xmr: improvement must be 'increase' or 'decrease', got {improvement}"
                    );
                };
                Ok(vec![value, improvement])
            }
            _ => plan_err!(
                "xmr takes 2 arguments (value, improvement), got {}",
                arg_types.len()
            ),
        }
    }

    fn partition_evaluator(
        &self,
        _args: PartitionEvaluatorArgs,
    ) -> Result<Box<dyn PartitionEvaluator>> {
        Ok(Box::new(XmrEvaluator))
    }

    fn field(&self, field_args: WindowUDFFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(
            field_args.name(),
            DataType::Struct(FIELDS.clone()),
            true,
        )))
    }

    fn documentation(&self) -> Option<&Documentation> {
        static DOCS: LazyLock<Documentation> = LazyLock::new(|| {
            Documentation::builder(
                DOC_SECTION_STATS,
                "Window function: the XmR (individuals) chart of a series, as NHS Making Data \
                 Count and NHSRplotthedots compute it, over the whole window partition in its \
                 ORDER BY order: the mean; the average moving range with moving ranges at or \
                 above 3.267 times it screened out; process limits mean ± 2.66 average moving \
                 ranges; and special_cause 'improvement' or 'concern' (NULL: common cause) for a \
                 point outside the limits, in a run of 7 on one side of the mean, in a trend of \
                 7 points rising or falling, or one of two of three points beyond 2 sigma on one \
                 side. Rows with a NULL value are left out of the chart and get NULL.",
                "xmr(value, improvement) OVER (ORDER BY month)",
            )
            .with_argument("value", "the measure, one row per period")
            .with_argument("improvement", "'increase' or 'decrease': which direction is better")
            .with_sql_example(
                "```sql\nSELECT month, flagged, xmr(flagged, 'decrease') OVER (ORDER BY month)['upl'] FROM t;\n```",
            )
            .build()
        });
        Some(&DOCS)
    }
}

/// Evaluates a whole partition at once: the chart needs every point.
#[derive(Debug)]
struct XmrEvaluator;

impl PartitionEvaluator for XmrEvaluator {
    fn evaluate_all(&mut self, values: &[ArrayRef], num_rows: usize) -> Result<ArrayRef> {
        let [value, improvement] = values else {
            return exec_err!("xmr takes 2 arguments, got {}", values.len());
        };
        let value = floats(value)?;
        let directions = collect_strings(improvement.as_ref())?;
        let mut direction = None;
        for text in directions.into_iter().flatten() {
            let increase = match text.trim().to_ascii_lowercase().as_str() {
                "increase" => true,
                "decrease" => false,
                _ => {
                    return exec_err!(
                        "xmr: improvement must be 'increase' or 'decrease', got '{text}'"
                    );
                }
            };
            if direction.is_some_and(|d| d != increase) {
                return exec_err!("xmr: improvement must be one direction for the whole series");
            }
            direction = Some(increase);
        }
        let Some(increase) = direction else {
            return exec_err!("xmr: improvement must be 'increase' or 'decrease', got NULL");
        };
        let points: Vec<f64> = value.iter().flatten().collect();
        let mut chart = xmr_chart(&points, increase).into_iter();
        let mut rows: Vec<Option<XmrPoint>> = Vec::with_capacity(num_rows);
        for row in value.iter() {
            rows.push(row.and_then(|_| chart.next()));
        }
        let finite = |v: f64| v.is_finite().then_some(v);
        let column = |get: fn(&XmrPoint) -> f64| -> ArrayRef {
            Arc::new(
                rows.iter()
                    .map(|p| p.as_ref().and_then(|p| finite(get(p))))
                    .collect::<Float64Array>(),
            )
        };
        let causes: StringArray = rows
            .iter()
            .map(|p| p.and_then(|p| p.special_cause).map(SpecialCause::label))
            .collect();
        let valid: Vec<bool> = rows.iter().map(Option::is_some).collect();
        Ok(Arc::new(StructArray::try_new(
            FIELDS.clone(),
            vec![
                column(|p| p.mean),
                column(|p| p.lpl),
                column(|p| p.upl),
                Arc::new(causes),
            ],
            Some(valid.into()),
        )?))
    }
}
