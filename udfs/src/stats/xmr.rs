//! Window `xmr(value, improvement[, target[, recalculate[, fix_after[, screen]]]]) OVER (ORDER BY
//! ...)`: an XmR (individuals) chart as NHS "Making Data Count" computes it, with its icons.

use std::sync::{Arc, LazyLock};

use arrow::array::{ArrayRef, AsArray, Float64Array, StringArray, StructArray};
use arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion_common::{Result, exec_err, plan_err};
use datafusion_expr::function::{PartitionEvaluatorArgs, WindowUDFFieldArgs};
use datafusion_expr::{Documentation, PartitionEvaluator, Signature, Volatility, WindowUDFImpl};

use super::{DOC_SECTION_STATS, floats, one_value_per_call};
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
        Field::new("variation_icon", DataType::Utf8, true),
        Field::new("assurance_icon", DataType::Utf8, true),
    ])
});

/// Which direction of the measure is better, NHSRplotthedots' `improvement_direction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Improvement {
    /// Higher is better.
    Increase,
    /// Lower is better.
    Decrease,
    /// Neither: special causes are only high or low.
    Neutral,
}

impl Improvement {
    /// `'increase'`, `'decrease'` or `'neutral'`, in any case and with spaces around.
    pub fn parse(text: &str) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "increase" => Ok(Self::Increase),
            "decrease" => Ok(Self::Decrease),
            "neutral" => Ok(Self::Neutral),
            _ => exec_err!(
                "xmr: improvement must be 'increase', 'decrease' or 'neutral', got '{text}'"
            ),
        }
    }
}

/// How one calculation period's limits are set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XmrSettings {
    /// Which direction is better.
    pub improvement: Improvement,
    /// Mean and limits from the first this many points only (a baseline), applied to them all.
    pub fix_after: Option<usize>,
    /// Leave moving ranges of 3.267 average moving ranges or more out of the average.
    pub screen: bool,
}

impl XmrSettings {
    /// Making Data Count's defaults: every point sets the limits, large moving ranges screened.
    pub fn new(improvement: Improvement) -> Self {
        Self {
            improvement,
            fix_after: None,
            screen: true,
        }
    }
}

/// What a special cause means, given the direction that is an improvement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecialCause {
    /// In the better direction.
    Improvement,
    /// In the worse direction.
    Concern,
    /// The series has no better direction.
    Neutral,
}

impl SpecialCause {
    fn label(self) -> &'static str {
        match self {
            Self::Improvement => "improvement",
            Self::Concern => "concern",
            Self::Neutral => "neutral",
        }
    }
}

/// One point of an XmR chart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct XmrPoint {
    /// The mean of the period (of its baseline, when fixed).
    pub mean: f64,
    /// Lower process limit: mean - 2.66 × average moving range.
    pub lpl: f64,
    /// Upper process limit: mean + 2.66 × average moving range.
    pub upl: f64,
    /// `None`: common cause variation.
    pub special_cause: Option<SpecialCause>,
    /// The special cause points up: above the mean, or part of a rising trend.
    pub high: bool,
}

impl XmrPoint {
    /// Making Data Count's variation icon for a series whose last point this is.
    pub fn variation_icon(&self) -> &'static str {
        match (self.special_cause, self.high) {
            (None, _) => "common_cause",
            (Some(SpecialCause::Improvement), true) => "improvement_high",
            (Some(SpecialCause::Improvement), false) => "improvement_low",
            (Some(SpecialCause::Concern), true) => "concern_high",
            (Some(SpecialCause::Concern), false) => "concern_low",
            (Some(SpecialCause::Neutral), true) => "neutral_high",
            (Some(SpecialCause::Neutral), false) => "neutral_low",
        }
    }

    /// Making Data Count's assurance icon for a series whose last point this is: whether its
    /// process limits say the target will be met (`pass`), missed (`fail`) or either
    /// (`inconsistent`). `None` for a neutral series or without limits.
    pub fn assurance_icon(&self, target: f64, improvement: Improvement) -> Option<&'static str> {
        if self.lpl.is_nan() || self.upl.is_nan() || target.is_nan() {
            return None;
        }
        let (above_limits, below_limits) = (target > self.upl, target < self.lpl);
        match improvement {
            Improvement::Neutral => None,
            _ if !above_limits && !below_limits => Some("inconsistent"),
            Improvement::Increase => Some(if above_limits { "fail" } else { "pass" }),
            Improvement::Decrease => Some(if above_limits { "pass" } else { "fail" }),
        }
    }
}

/// The XmR chart of one calculation period's `values` (in time order) as NHSRplotthedots
/// computes it: the mean; the average moving range, taken again without the moving ranges at or
/// above 3.267 times it (unless screening is off); both from the first `fix_after` points only
/// when set; limits 2.66 average moving ranges from the mean; and a special cause where a point
/// is outside the limits, part of 7 points on one side of the mean, part of 7 points each higher
/// (or each lower) than the one before, or one of two out of three points on one side of the mean
/// beyond 2 sigma (but inside the limits). In that order of precedence a special cause points up
/// or down: outside the limits, two of three and a run by the point's side of the mean, a trend
/// by its direction (where trends meet, the later one's).
///
/// A flat series (no variation) has its limits at the mean and no special cause.
pub fn xmr_chart(values: &[f64], settings: XmrSettings) -> Vec<XmrPoint> {
    let n = values.len();
    if n == 0 {
        return Vec::new();
    }
    let baseline = &values[..settings.fix_after.map_or(n, |fixed| fixed.clamp(1, n))];
    let mean = baseline.iter().sum::<f64>() / baseline.len() as f64;
    let ranges: Vec<f64> = baseline.windows(2).map(|w| (w[1] - w[0]).abs()).collect();
    let average = |ranges: &mut dyn Iterator<Item = f64>| {
        let (sum, count) = ranges.fold((0.0, 0usize), |(s, c), r| (s + r, c + 1));
        (count > 0).then(|| sum / count as f64)
    };
    let first = average(&mut ranges.iter().copied());
    let amr = match first {
        Some(amr) if amr > 0.0 && settings.screen => {
            average(&mut ranges.iter().copied().filter(|&r| r < MR_SCREEN * amr))
        }
        other => other,
    };
    let Some(amr) = amr else {
        // One point: a mean, but no moving range to set limits by.
        return values
            .iter()
            .map(|_| XmrPoint {
                mean,
                lpl: f64::NAN,
                upl: f64::NAN,
                special_cause: None,
                high: false,
            })
            .collect();
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
    // Trends: 7 points each strictly above (or below) the one before; each point keeps the
    // direction of the last trend it is part of.
    let mut trend = vec![0i8; n];
    for end in TREND - 1..n {
        let steps = values[end + 1 - TREND..=end].windows(2);
        let direction = if steps.clone().all(|w| w[1] > w[0]) {
            1
        } else if steps.clone().all(|w| w[1] < w[0]) {
            -1
        } else {
            continue;
        };
        for point in end + 1 - TREND..=end {
            special[point] = true;
            trend[point] = direction;
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
    (0..n)
        .map(|point| {
            let high = if outside[point] || trend[point] == 0 {
                side[point] > 0
            } else {
                trend[point] > 0
            };
            let cause = match settings.improvement {
                Improvement::Neutral => SpecialCause::Neutral,
                Improvement::Increase if high => SpecialCause::Improvement,
                Improvement::Decrease if !high => SpecialCause::Improvement,
                _ => SpecialCause::Concern,
            };
            XmrPoint {
                mean,
                lpl,
                upl,
                special_cause: special[point].then_some(cause),
                high: special[point] && high,
            }
        })
        .collect()
}

/// The arguments after `value` and `improvement`, all optional.
const OPTIONAL: [&str; 4] = ["target", "recalculate", "fix_after", "screen"];

/// `xmr(value, improvement[, target[, recalculate[, fix_after[, screen]]]])` ->
/// `{mean, lpl, upl, special_cause, variation_icon, assurance_icon}`.
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
        if !(2..=6).contains(&arg_types.len()) {
            return plan_err!(
                "xmr takes 2 to 6 arguments (value, improvement[, target[, recalculate[, fix_after[, screen]]]]), got {}",
                arg_types.len()
            );
        }
        let roles = ["value", "improvement"].into_iter().chain(OPTIONAL);
        arg_types
            .iter()
            .zip(roles)
            .map(|(data_type, role)| {
                let number = data_type.is_numeric() || data_type.is_null();
                match role {
                    "improvement" if is_string_type(data_type) || data_type.is_null() => {
                        Ok(DataType::Utf8)
                    }
                    "improvement" => plan_err!(
                        "xmr: improvement must be 'increase', 'decrease' or 'neutral', got {data_type}"
                    ),
                    "recalculate" | "screen"
                        if matches!(data_type, DataType::Boolean | DataType::Null) =>
                    {
                        Ok(DataType::Boolean)
                    }
                    "recalculate" | "screen" => {
                        plan_err!("xmr: {role} must be true or false, got {data_type}")
                    }
                    _ if number => Ok(DataType::Float64),
                    _ => plan_err!("xmr: the {role} must be a number, got {data_type}"),
                }
            })
            .collect()
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
                 above 3.267 times it screened out (unless screen is false); process limits \
                 mean ± 2.66 average moving ranges; and special_cause 'improvement' or 'concern' \
                 ('neutral' when neither direction is better; NULL: common cause) for a point \
                 outside the limits, in a run of 7 on one side of the mean, in a trend of 7 \
                 points rising or falling, or one of two of three points beyond 2 sigma on one \
                 side. recalculate true on a row starts a new period with its own limits; \
                 fix_after N sets each period's mean and limits from its first N points. Every \
                 row also carries the series' icons: variation_icon from its last point \
                 ('common_cause', 'improvement_high', 'improvement_low', 'concern_high', \
                 'concern_low', 'neutral_high', 'neutral_low') and assurance_icon, the target \
                 against the last limits ('pass', 'fail', 'inconsistent'; NULL without a target \
                 or for a neutral series). Rows with a NULL value are left out of the chart and \
                 get NULL.",
                "xmr(value, improvement[, target[, recalculate[, fix_after[, screen]]]]) OVER (ORDER BY month)",
            )
            .with_argument("value", "the measure, one row per period")
            .with_argument(
                "improvement",
                "'increase', 'decrease' or 'neutral': which direction is better",
            )
            .with_argument("target", "the value to reach, or NULL")
            .with_argument(
                "recalculate",
                "true on the first row of a new period (a change in the process), or NULL",
            )
            .with_argument("fix_after", "limits from the first N points of each period, or NULL")
            .with_argument("screen", "false to keep large moving ranges in the average")
            .with_sql_example(
                "```sql\nSELECT month, flagged,\n       xmr(flagged, 'decrease', 900, month = '202404') OVER (ORDER BY month)['upl']\nFROM t;\n```",
            )
            .build()
        });
        Some(&DOCS)
    }
}

/// Evaluates a whole partition at once: the chart needs every point.
#[derive(Debug)]
struct XmrEvaluator;

/// The series' settings from the optional arguments' columns.
fn series_settings(improvement: Improvement, optional: &[ArrayRef]) -> Result<XmrSettings> {
    let mut settings = XmrSettings::new(improvement);
    if let Some(fix_after) = optional.get(2) {
        let mut fixed = None;
        one_value_per_call("xmr", "fix_after", &mut fixed, floats(fix_after)?.iter())?;
        settings.fix_after = match fixed {
            Some(n) if n >= 1.0 && n.fract() == 0.0 => Some(n as usize),
            Some(n) => {
                return exec_err!("xmr: fix_after must be a whole number of points, got {n}");
            }
            None => None,
        };
    }
    if let Some(screen) = optional.get(3) {
        let screen = screen.as_boolean_opt().map(|b| b.iter());
        let Some(screen) = screen else {
            return exec_err!("xmr: screen must be true or false");
        };
        let mut screened = None;
        one_value_per_call("xmr", "screen", &mut screened, screen)?;
        settings.screen = screened.unwrap_or(true);
    }
    Ok(settings)
}

impl PartitionEvaluator for XmrEvaluator {
    fn evaluate_all(&mut self, values: &[ArrayRef], num_rows: usize) -> Result<ArrayRef> {
        let [value, improvement, optional @ ..] = values else {
            return exec_err!("xmr takes 2 to 6 arguments, got {}", values.len());
        };
        let value = floats(value)?;
        let directions = collect_strings(improvement.as_ref())?;
        let mut direction = None;
        for text in directions.into_iter().flatten() {
            let parsed = Improvement::parse(text)?;
            if direction.is_some_and(|d| d != parsed) {
                return exec_err!("xmr: improvement must be one direction for the whole series");
            }
            direction = Some(parsed);
        }
        let Some(improvement) = direction else {
            return exec_err!(
                "xmr: improvement must be 'increase', 'decrease' or 'neutral', got NULL"
            );
        };
        let mut target = None;
        if let Some(targets) = optional.first() {
            one_value_per_call("xmr", "target", &mut target, floats(targets)?.iter())?;
        }
        let recalculate = match optional.get(1) {
            Some(flags) => match flags.as_boolean_opt() {
                Some(flags) => flags.iter().map(|f| f == Some(true)).collect(),
                None => return exec_err!("xmr: recalculate must be true or false"),
            },
            None => vec![false; num_rows],
        };
        let settings = series_settings(improvement, optional)?;

        // Split the rows with values into periods at each recalculation (a flag on a row without
        // a value starts the period at the next value).
        let mut periods: Vec<Vec<f64>> = vec![Vec::new()];
        let mut pending = false;
        for (row, point) in value.iter().enumerate() {
            pending |= recalculate.get(row).copied().unwrap_or(false);
            if let Some(point) = point {
                if pending && periods.last().is_some_and(|p| !p.is_empty()) {
                    periods.push(Vec::new());
                }
                pending = false;
                if let Some(period) = periods.last_mut() {
                    period.push(point);
                }
            }
        }
        let points: Vec<XmrPoint> = periods
            .iter()
            .flat_map(|period| xmr_chart(period, settings))
            .collect();
        let last = points.last();
        let variation = last.map(XmrPoint::variation_icon);
        let assurance = last.and_then(|p| target.and_then(|t| p.assurance_icon(t, improvement)));

        let mut chart = points.iter();
        let rows: Vec<Option<&XmrPoint>> = value
            .iter()
            .map(|row| row.and_then(|_| chart.next()))
            .collect();
        let finite = |v: f64| v.is_finite().then_some(v);
        let column = |get: fn(&XmrPoint) -> f64| -> ArrayRef {
            Arc::new(
                rows.iter()
                    .map(|p| p.and_then(|p| finite(get(p))))
                    .collect::<Float64Array>(),
            )
        };
        let causes: StringArray = rows
            .iter()
            .map(|p| p.and_then(|p| p.special_cause).map(SpecialCause::label))
            .collect();
        let series_label = |label: Option<&str>| -> ArrayRef {
            Arc::new(rows.iter().map(|p| p.and(label)).collect::<StringArray>())
        };
        let valid: Vec<bool> = rows.iter().map(Option::is_some).collect();
        Ok(Arc::new(StructArray::try_new(
            FIELDS.clone(),
            vec![
                column(|p| p.mean),
                column(|p| p.lpl),
                column(|p| p.upl),
                Arc::new(causes),
                series_label(variation),
                series_label(assurance),
            ],
            Some(valid.into()),
        )?))
    }
}
