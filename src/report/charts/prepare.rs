//! What each chart draws, worked out from a result's columns before any drawing: which rows are
//! points, which funnel points lie outside their limits, the order of an interval chart's rows and
//! a line chart's largest series. Pure functions, so they are tested without an SVG.

use std::collections::BTreeMap;

use anyhow::Result;

/// A provider on a funnel plot.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct FunnelPoint {
    /// The denominator (x): a count, an expected count or a (derived) population.
    pub n: f64,
    /// The proportion, ratio or rate (y).
    pub value: f64,
    pub label: String,
    /// Its own 95% interval, when the query gives one (for the hover text).
    pub interval: Option<(f64, f64)>,
    /// The 99.8% funnel limits at its denominator.
    pub limits: [f64; 2],
}

impl FunnelPoint {
    /// Outside the 99.8% limits: drawn in the alarm colour and labelled.
    pub fn outside(&self) -> bool {
        self.value < self.limits[0] || self.value > self.limits[1]
    }
}

/// The columns a funnel plot reads, one value per result row.
pub(super) struct FunnelColumns {
    pub n: Vec<Option<f64>>,
    pub value: Vec<Option<f64>>,
    pub label: Vec<Option<String>>,
    pub lower: Vec<Option<f64>>,
    pub upper: Vec<Option<f64>>,
}

/// The drawable rows (a denominator above 0 and a value that is not suppressed or NULL), each with
/// its 99.8% limits, `limits(n)`.
pub(super) fn funnel_points(
    columns: &FunnelColumns,
    limits: impl Fn(f64) -> Result<[f64; 2]>,
) -> Result<Vec<FunnelPoint>> {
    let mut points = Vec::new();
    for row in 0..columns.n.len() {
        let (Some(n), Some(value)) = (columns.n[row], columns.value[row]) else {
            continue;
        };
        if n <= 0.0 {
            continue;
        }
        let interval = columns.lower[row].zip(columns.upper[row]);
        points.push(FunnelPoint {
            n,
            value,
            label: columns.label[row].clone().unwrap_or_default(),
            interval,
            limits: limits(n)?,
        });
    }
    Ok(points)
}

/// A point of an SPC chart: its position along the months, value and special cause (`None`: common
/// cause).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct SpcPoint {
    pub index: usize,
    pub value: f64,
    pub cause: Option<String>,
}

/// The months with a value; a suppressed cause (`*`) reads as common cause.
pub(super) fn spc_points(values: &[Option<f64>], causes: &[Option<String>]) -> Vec<SpcPoint> {
    values
        .iter()
        .enumerate()
        .filter_map(|(index, value)| {
            Some(SpcPoint {
                index,
                value: (*value)?,
                cause: causes.get(index).cloned().flatten().filter(|c| c != "*"),
            })
        })
        .collect()
}

/// A run of months with one mean and one pair of process limits: a calculation period of an SPC
/// chart (a recalculation starts the next).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct SpcPeriod {
    pub first: usize,
    pub last: usize,
    pub mean: f64,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
}

/// The calculation periods of an SPC chart from each month's mean and limits: consecutive months
/// with a mean, and the same mean and limits, are one period. Months without a mean (no value,
/// or suppressed) neither end a period nor start one.
pub(super) fn spc_periods(
    means: &[Option<f64>],
    lower: &[Option<f64>],
    upper: &[Option<f64>],
) -> Vec<SpcPeriod> {
    let mut periods: Vec<SpcPeriod> = Vec::new();
    for (index, mean) in means.iter().enumerate() {
        let Some(mean) = *mean else { continue };
        let (lower, upper) = (
            lower.get(index).copied().flatten(),
            upper.get(index).copied().flatten(),
        );
        match periods.last_mut() {
            Some(period)
                if period.mean == mean && period.lower == lower && period.upper == upper =>
            {
                period.last = index;
            }
            _ => periods.push(SpcPeriod {
                first: index,
                last: index,
                mean,
                lower,
                upper,
            }),
        }
    }
    periods
}

/// An estimate with its interval, on an interval chart.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Estimate {
    pub label: String,
    pub value: f64,
    pub lower: f64,
    pub upper: f64,
}

/// The rows with a label, an estimate and both limits, lowest estimate first (drawn at the bottom).
pub(super) fn ranked_estimates(
    labels: &[Option<String>],
    values: &[Option<f64>],
    lower: &[Option<f64>],
    upper: &[Option<f64>],
) -> Vec<Estimate> {
    let mut rows: Vec<Estimate> = (0..values.len())
        .filter_map(|i| {
            Some(Estimate {
                label: labels[i].clone()?,
                value: values[i]?,
                lower: lower[i]?,
                upper: upper[i]?,
            })
        })
        .collect();
    rows.sort_by(|a, b| a.value.total_cmp(&b.value));
    rows
}

/// A line chart's data: the months along x, and the largest series with their values by month.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Lines {
    pub months: Vec<String>,
    /// Largest total first; each series' values keyed by the month's position.
    pub series: Vec<(String, BTreeMap<usize, f64>)>,
}

/// The `top` series with the largest totals (ties by name), their values summed by month.
pub(super) fn top_series(
    months: &[Option<String>],
    values: &[Option<f64>],
    series: &[Option<String>],
    top: usize,
) -> Lines {
    let mut axis: Vec<String> = months.iter().flatten().cloned().collect();
    axis.sort();
    axis.dedup();
    let mut totals: BTreeMap<&str, f64> = BTreeMap::new();
    let mut by_month: BTreeMap<&str, BTreeMap<usize, f64>> = BTreeMap::new();
    for row in 0..values.len() {
        let (Some(name), Some(month), Some(value)) = (&series[row], &months[row], values[row])
        else {
            continue;
        };
        let Ok(index) = axis.binary_search(month) else {
            continue;
        };
        *totals.entry(name).or_default() += value;
        *by_month.entry(name).or_default().entry(index).or_default() += value;
    }
    let mut ranked: Vec<(&str, f64)> = totals.into_iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    ranked.truncate(top);
    let series = ranked
        .into_iter()
        .map(|(name, _)| (name.to_owned(), by_month.remove(name).unwrap_or_default()))
        .collect();
    Lines {
        months: axis,
        series,
    }
}

/// The smallest and largest of `values`, or `None` when there are none.
pub(super) fn extent(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values.into_iter().fold(None, |range, v| match range {
        None => Some((v, v)),
        Some((low, high)) => Some((low.min(v), high.max(v))),
    })
}

/// A range widened by 8% of its span each side, so points at the edges are not cut.
pub(super) fn padded((low, high): (f64, f64)) -> (f64, f64) {
    let span = (high - low).abs().max(high.abs() * 0.1).max(1e-9);
    (low - span * 0.08, high + span * 0.08)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(values: &[Option<&str>]) -> Vec<Option<String>> {
        values.iter().map(|v| v.map(str::to_owned)).collect()
    }

    #[test]
    fn funnel_points_skip_suppressed_and_empty_rows_and_mark_outliers() {
        let columns = FunnelColumns {
            n: vec![Some(1000.0), Some(1000.0), Some(5.0), Some(0.0)],
            value: vec![Some(0.9), Some(0.5), None, Some(0.5)],
            label: text(&[Some("ROUT"), Some("RIN"), Some("RSUP"), Some("RZERO")]),
            lower: vec![Some(0.88), None, None, None],
            upper: vec![Some(0.92), None, None, None],
        };
        let z998 = ebiq_udfs::z_score(0.998).expect("0.998 is a valid confidence");
        let limits = |n| Ok(ebiq_udfs::funnel_limits(0.5, n, z998)?.unwrap_or([0.0, 1.0]));
        let points = funnel_points(&columns, limits).expect("valid limits");
        let labels: Vec<_> = points.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(
            labels,
            ["ROUT", "RIN"],
            "suppressed share and n = 0 are not drawn"
        );
        assert!(
            points[0].outside(),
            "0.9 lies above the 99.8% limit near 0.55"
        );
        assert!(!points[1].outside(), "0.5 is the baseline itself");
        assert_eq!(points[0].interval, Some((0.88, 0.92)));
        assert_eq!(points[1].interval, None);
        let [low, high] = points[1].limits;
        assert!(
            low > 0.44 && low < 0.46 && high > 0.54 && high < 0.56,
            "{low} {high}"
        );
    }

    #[test]
    fn a_change_of_mean_or_limits_starts_a_period() {
        let means = [Some(5.0), Some(5.0), None, Some(5.0), Some(2.0), Some(2.0)];
        let lower = [Some(1.0), Some(1.0), None, Some(1.0), Some(0.5), Some(0.5)];
        let upper = [Some(9.0), Some(9.0), None, Some(9.0), Some(3.5), Some(3.5)];
        let periods = spc_periods(&means, &lower, &upper);
        let spans: Vec<(usize, usize, f64)> =
            periods.iter().map(|p| (p.first, p.last, p.mean)).collect();
        assert_eq!(spans, vec![(0, 3, 5.0), (4, 5, 2.0)]);
    }

    #[test]
    fn spc_points_keep_months_with_values_and_read_a_suppressed_cause_as_common() {
        let values = [Some(3.0), None, Some(5.0), Some(9.0)];
        let causes = text(&[None, Some("concern"), Some("*"), Some("improvement")]);
        let points = spc_points(&values, &causes);
        let summary: Vec<_> = points
            .iter()
            .map(|p| (p.index, p.value, p.cause.as_deref()))
            .collect();
        assert_eq!(
            summary,
            [
                (0, 3.0, None),
                (2, 5.0, None),
                (3, 9.0, Some("improvement"))
            ]
        );
    }

    #[test]
    fn estimates_are_ranked_lowest_first_and_need_both_limits() {
        let rows = ranked_estimates(
            &text(&[Some("A"), Some("B"), Some("C"), None]),
            &[Some(30.0), Some(10.0), Some(20.0), Some(5.0)],
            &[Some(25.0), Some(8.0), None, Some(4.0)],
            &[Some(35.0), Some(12.0), Some(22.0), Some(6.0)],
        );
        let labels: Vec<_> = rows.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(
            labels,
            ["B", "A"],
            "C lacks a lower limit, the last row a label"
        );
    }

    #[test]
    fn line_charts_keep_the_largest_series_summed_by_month() {
        let months = text(&[
            Some("202402"),
            Some("202401"),
            Some("202401"),
            Some("202402"),
            Some("202401"),
            None,
        ]);
        let values = [
            Some(5.0),
            Some(1.0),
            Some(4.0),
            Some(2.0),
            Some(3.0),
            Some(100.0),
        ];
        let series = text(&[
            Some("X"),
            Some("X"),
            Some("Y"),
            Some("Y"),
            Some("X"),
            Some("Z"),
        ]);
        let lines = top_series(&months, &values, &series, 1);
        assert_eq!(lines.months, ["202401", "202402"]);
        assert_eq!(lines.series.len(), 1, "top=1 keeps one series");
        let (name, by_month) = &lines.series[0];
        assert_eq!(name, "X", "X totals 9, Y 6; Z's row has no month");
        assert_eq!(
            by_month.get(&0),
            Some(&4.0),
            "X's two January rows are summed"
        );
        assert_eq!(by_month.get(&1), Some(&5.0));
    }

    #[test]
    fn extents_are_padded_and_empty_data_has_none() {
        assert_eq!(extent([3.0, -1.0, 2.0]), Some((-1.0, 3.0)));
        assert_eq!(extent(std::iter::empty()), None);
        let (low, high) = padded((0.0, 10.0));
        assert!(
            (low + 0.8).abs() < 1e-12 && (high - 10.8).abs() < 1e-12,
            "{low} {high}"
        );
    }
}
