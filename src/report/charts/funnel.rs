//! The funnel plot: each provider's value against its denominator, inside the 95% and 99.8% limits
//! of the statistic its header names (`statistic=proportion`, the default, `ratio` or `rate`), drawn
//! as the published methods draw them.

use anyhow::{Result, anyhow, bail};
use ebiq_udfs::{
    Dispersion, DispersionMethod, adjusted_ratio_limits, funnel_limits, rate_funnel_limits, z_score,
};
use plotters::prelude::*;

use super::canvas::{
    Area, BLACK_, BLUE, FONT, HEIGHT, Hovers, LIGHT, ORANGE, VERMILLION, WIDTH, canvas, frame,
    legend, line_sample,
};
use super::prepare::{FunnelColumns, extent, funnel_points, padded};
use super::{Chart, ChartSpec, Table};

/// The limits a funnel draws, with what they are drawn around.
#[derive(Debug, Clone, Copy, PartialEq)]
enum FunnelLimits {
    /// Wilson score limits of a proportion around the baseline, as PHE draws them.
    Proportion { baseline: f64 },
    /// Limits of an observed/expected ratio around 1 at the expected count: FunnelPlotR's exact
    /// Poisson limits, widened by tau² when phi > 1 (`phi=`, `tau2=` columns, `method=SHMI|CQC`).
    Ratio {
        method: DispersionMethod,
        dispersion: Dispersion,
    },
    /// PHE's limits of a rate (per `multiplier=`) around the baseline rate at a denominator; for a
    /// DSR the denominator is PHE's derived one, `multiplier × events / DSR`.
    Rate { baseline: f64, multiplier: f64 },
}

impl FunnelLimits {
    fn read(spec: &ChartSpec, table: &Table<'_>) -> Result<Self> {
        let baseline = || -> Result<f64> {
            let Some(column) = spec.columns.get("baseline") else {
                bail!("this funnel chart needs baseline=COLUMN in its @chart header");
            };
            Ok(table.first_number(column)?.unwrap_or(0.0))
        };
        let statistic = spec
            .columns
            .get("statistic")
            .map_or("proportion", String::as_str);
        match statistic {
            "proportion" => Ok(Self::Proportion {
                baseline: baseline()?,
            }),
            "ratio" => {
                let method = DispersionMethod::parse(
                    spec.columns.get("method").map_or("SHMI", String::as_str),
                )?;
                // Without phi and tau² columns the limits are the unadjusted Poisson ones.
                let number = |key: &str| -> Result<f64> {
                    Ok(match spec.columns.get(key) {
                        Some(column) => table.first_number(column)?.unwrap_or(f64::NAN),
                        None => f64::NAN,
                    })
                };
                let dispersion = Dispersion {
                    phi: number("phi")?,
                    tau2: number("tau2")?,
                    groups: 0,
                };
                Ok(Self::Ratio { method, dispersion })
            }
            "rate" => {
                let multiplier = spec
                    .columns
                    .get("multiplier")
                    .and_then(|m| m.replace([',', '_'], "").parse::<f64>().ok())
                    .filter(|m| *m > 0.0)
                    .ok_or_else(|| {
                        anyhow!("a rate funnel needs multiplier=NUMBER (such as 100000) in its @chart header")
                    })?;
                Ok(Self::Rate {
                    baseline: baseline()?,
                    multiplier,
                })
            }
            other => {
                bail!("unknown funnel statistic '{other}': expected proportion, ratio or rate")
            }
        }
    }

    /// The value the limits close in on.
    fn baseline(self) -> f64 {
        match self {
            Self::Proportion { baseline } | Self::Rate { baseline, .. } => baseline,
            Self::Ratio { .. } => 1.0,
        }
    }

    /// The limits at denominator `n` and confidence `level`; the widest possible where there are
    /// none (a denominator of 0).
    fn at(self, n: f64, level: f64) -> Result<[f64; 2]> {
        let limits = match self {
            Self::Proportion { baseline } => funnel_limits(baseline, n, z_score(level)?)?,
            Self::Ratio { method, dispersion } => {
                adjusted_ratio_limits(n, level, method, dispersion)?
            }
            Self::Rate {
                baseline,
                multiplier,
            } => rate_funnel_limits(baseline / multiplier * n, level)
                .map(|[low, high]| [low * baseline, high * baseline]),
        };
        Ok(limits.unwrap_or([0.0, self.ceiling()]))
    }

    /// The largest value the y axis can take.
    fn ceiling(self) -> f64 {
        match self {
            Self::Proportion { .. } => 1.0,
            Self::Ratio { .. } | Self::Rate { .. } => f64::INFINITY,
        }
    }

    fn baseline_label(self) -> &'static str {
        match self {
            Self::Proportion { .. } => "national",
            Self::Ratio { .. } => "as expected (1)",
            Self::Rate { .. } => "average",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Proportion { .. } => "proportion",
            Self::Ratio { .. } => "observed / expected",
            Self::Rate { .. } => "rate",
        }
    }
}

pub(super) fn funnel(spec: &ChartSpec, table: &Table<'_>, title: &str) -> Result<Chart> {
    let limits = FunnelLimits::read(spec, table)?;
    let columns = FunnelColumns {
        n: table.numbers(spec.column("x"))?,
        value: table.numbers(spec.column("y"))?,
        label: table.text(spec.column("label"))?,
        lower: table.optional_numbers(spec, "lower")?,
        upper: table.optional_numbers(spec, "upper")?,
    };
    let baseline = limits.baseline();
    let points = funnel_points(&columns, |n| limits.at(n, 0.998))?;
    // From half the smallest denominator (at least 1) to a little past the largest, as PHE's
    // funnel plots frame them; the y range takes in the points and the widest limits drawn.
    let x_max = points.iter().map(|p| p.n).fold(10.0, f64::max) * 1.3;
    let x_min =
        (points.iter().map(|p| p.n).fold(f64::INFINITY, f64::min) / 2.0).clamp(1.0, x_max / 10.0);
    let curve = |level: f64, side: usize| -> Result<Vec<(f64, f64)>> {
        const STEPS: u32 = 120;
        (0..=STEPS)
            .map(|i| {
                let n = x_min * (x_max / x_min).powf(f64::from(i) / f64::from(STEPS));
                Ok((n, limits.at(n, level)?[side]))
            })
            .collect()
    };
    let values = points.iter().map(|p| p.value);
    // A proportion's axis takes in its widest limits (they stay within 0 to 1); a ratio's or a
    // rate's limits at a small denominator would dwarf the points, so its axis frames the points
    // and the curves are drawn where they fall inside it, as FunnelPlotR frames its plots.
    let range = match limits {
        FunnelLimits::Proportion { .. } => {
            let widest = limits.at(x_min, 0.998)?;
            extent(values.chain([baseline, widest[0], widest[1]]))
        }
        FunnelLimits::Ratio { .. } | FunnelLimits::Rate { .. } => extent(values.chain([baseline]))
            .map(|(low, high)| (low - (high - low) * 0.25, high + (high - low) * 0.25)),
    };
    let (y_low, y_high) = padded(range.unwrap_or((0.0, 1.0)));
    let (y_low, y_high) = (y_low.max(0.0), y_high.min(limits.ceiling()));
    let lines = [
        (curve(0.998, 1)?, VERMILLION, "99.8% limits"),
        (curve(0.998, 0)?, VERMILLION, ""),
        (curve(0.95, 1)?, ORANGE, "95% limits"),
        (curve(0.95, 0)?, ORANGE, ""),
        (
            vec![(x_min, baseline), (x_max, baseline)],
            BLACK_,
            limits.baseline_label(),
        ),
    ];
    canvas((WIDTH, HEIGHT), |root: &Area<'_>| {
        let mut chart = frame(root, title, (48, 64))
            .build_cartesian_2d((x_min..x_max).log_scale(), y_low..y_high)?;
        chart
            .configure_mesh()
            .x_labels(6)
            .x_label_formatter(&|n| thousands(*n))
            .x_desc(format!("{} (log scale)", spec.column("x")))
            .y_desc(format!(
                "{} ({}){}",
                spec.column("y"),
                limits.describe(),
                spec.units()
            ))
            .label_style((FONT, 12))
            .light_line_style(LIGHT)
            .max_light_lines(0)
            .draw()?;
        for (curve, colour, label) in lines {
            // A limit beyond the axis (a ratio's upper limit at a tiny expected count) is left out.
            let inside = curve
                .into_iter()
                .filter(|(_, v)| (y_low..=y_high).contains(v));
            let series = chart.draw_series(LineSeries::new(inside, colour.stroke_width(2)))?;
            if !label.is_empty() {
                series.label(label).legend(line_sample(colour));
            }
        }
        chart
            .draw_series(points.iter().map(|p| {
                let colour = if p.outside() { VERMILLION } else { BLUE };
                Circle::new((p.n, p.value), 4, colour.filled())
            }))?
            .label(spec.column("label").to_owned())
            .legend(|(x, y)| Circle::new((x + 10, y), 4, BLUE.filled()));
        chart.draw_series(points.iter().filter(|p| p.outside()).map(|p| {
            EmptyElement::at((p.n, p.value)) + Text::new(p.label.clone(), (6, -14), (FONT, 12))
        }))?;
        // Where the funnel leaves room: below its narrow end for proportions near 0, above it
        // for ratios and rates.
        let corner = match limits {
            FunnelLimits::Proportion { .. } => SeriesLabelPosition::LowerRight,
            FunnelLimits::Ratio { .. } | FunnelLimits::Rate { .. } => {
                SeriesLabelPosition::UpperRight
            }
        };
        legend(&mut chart, corner)?;
        let mut hovers = Hovers::default();
        for p in &points {
            let interval = p
                .interval
                .map(|(low, high)| format!(", 95% interval {low:.4} to {high:.4}"))
                .unwrap_or_default();
            let (x, y) = (spec.column("x"), spec.column("y"));
            let position = match limits {
                FunnelLimits::Proportion { .. } => {
                    format!(
                        "{:.0} of {} {x} ({y} {:.4}{interval})",
                        p.value * p.n,
                        p.n,
                        p.value
                    )
                }
                _ => format!("{y} {:.4}{interval} at {x} {:.1}", p.value, p.n),
            };
            hovers.add(
                chart.backend_coord(&(p.n, p.value)),
                &format!(
                    "{}: {position}; funnel 99.8% limits {:.4} to {:.4}",
                    p.label, p.limits[0], p.limits[1]
                ),
            );
        }
        Ok(hovers)
    })
}

/// A denominator on the axis: whole, with thousands separated (`1,200,000`), or to two decimal
/// places below 10 (small expected counts).
fn thousands(n: f64) -> String {
    if n < 10.0 {
        return format!("{n:.2}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned();
    }
    let digits = format!("{:.0}", n.round());
    let mut grouped = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Float64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    /// Two providers at expected counts 100 and 400, ratios 1.5 and 1.02, with phi and tau2.
    fn providers(phi: f64, tau2: f64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("provider", DataType::Utf8, false),
            Field::new("expected", DataType::Float64, false),
            Field::new("ratio", DataType::Float64, false),
            Field::new("phi", DataType::Float64, false),
            Field::new("tau2", DataType::Float64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["RHIGH", "RMID"])),
                Arc::new(Float64Array::from(vec![100.0, 400.0])),
                Arc::new(Float64Array::from(vec![1.5, 1.02])),
                Arc::new(Float64Array::from(vec![phi; 2])),
                Arc::new(Float64Array::from(vec![tau2; 2])),
            ],
        )
        .expect("a valid batch")
    }

    const RATIO: &str =
        "funnel statistic=ratio x=expected y=ratio label=provider phi=phi tau2=tau2";

    fn limits(header: &str, batch: &RecordBatch) -> Result<FunnelLimits> {
        FunnelLimits::read(&ChartSpec::parse(header)?, &Table { batch })
    }

    #[test]
    fn denominators_read_as_numbers_people_write() {
        assert_eq!(thousands(1_200_000.0), "1,200,000");
        assert_eq!(thousands(95_000.4), "95,000");
        assert_eq!(thousands(100.0), "100");
        assert_eq!(thousands(2.5), "2.5");
        assert_eq!(thousands(1.0), "1");
    }

    #[test]
    fn a_ratio_funnel_widens_only_when_phi_is_above_one() -> Result<()> {
        let poisson = limits(RATIO, &providers(0.8, 0.0))?.at(100.0, 0.998)?;
        let exact = ebiq_udfs::ratio_funnel_limits(100.0, 0.998)?.unwrap_or_default();
        assert_eq!(
            poisson, exact,
            "no overdispersion: the exact Poisson limits"
        );
        let widened = limits(RATIO, &providers(3.0, 0.05))?.at(100.0, 0.998)?;
        let spread = z_score(0.998)? * (1.0 / 100.0 + 0.05_f64).sqrt();
        assert_eq!(
            widened,
            [(-spread).exp(), spread.exp()],
            "SHMI: exp(±z√(1/E+τ²))"
        );
        assert!(widened[1] > poisson[1] && widened[0] < poisson[0]);
        let cqc = limits(&format!("{RATIO} method=CQC"), &providers(3.0, 0.05))?;
        assert_ne!(cqc.at(100.0, 0.998)?, widened);
        Ok(())
    }

    #[test]
    fn a_ratio_funnel_marks_the_provider_outside_its_widened_limits() -> Result<()> {
        let spec = ChartSpec::parse(RATIO)?;
        // At E = 100 the unadjusted 99.8% upper limit is about 1.33: 1.5 lies outside, unless
        // tau2 widens the funnel to exp(3.09 × √(0.01 + 0.05)) ≈ 2.13.
        let tight = draw(&spec, &providers(0.8, 0.0))?;
        let wide = draw(&spec, &providers(3.0, 0.05))?;
        assert_eq!((tight.points, wide.points), (2, 2));
        assert!(
            tight.svg.contains(">\nRHIGH\n</text>"),
            "labelled as an outlier"
        );
        assert!(
            !wide.svg.contains(">\nRHIGH\n</text>"),
            "inside the widened funnel"
        );
        assert!(
            tight
                .svg
                .contains("<title>RHIGH: ratio 1.5000 at expected 100.0;")
        );
        assert!(
            tight.svg.contains("ratio (observed / expected)"),
            "the y axis says what it is"
        );
        Ok(())
    }

    fn draw(spec: &ChartSpec, batch: &RecordBatch) -> Result<Chart> {
        funnel(spec, &Table { batch }, "t")
    }

    #[test]
    fn a_rate_funnel_scales_phe_s_limits_by_the_average_rate() -> Result<()> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("area", DataType::Utf8, false),
            Field::new("denominator", DataType::Float64, false),
            Field::new("dsr", DataType::Float64, false),
            Field::new("average", DataType::Float64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["Q1"])),
                Arc::new(Float64Array::from(vec![50_000.0])),
                Arc::new(Float64Array::from(vec![30.0])),
                Arc::new(Float64Array::from(vec![20.0])),
            ],
        )?;
        let header = "funnel statistic=rate x=denominator y=dsr label=area baseline=average";
        let refused = limits(header, &batch).err().map(|e| e.to_string());
        assert!(refused.is_some_and(|e| e.contains("multiplier=NUMBER")));
        let rate = limits(&format!("{header} multiplier=100,000"), &batch)?;
        // 20 per 100,000 of 50,000 people is 10 events expected.
        let [low, high] = ebiq_udfs::rate_funnel_limits(10.0, 0.95).unwrap_or_default();
        assert_eq!(rate.at(50_000.0, 0.95)?, [low * 20.0, high * 20.0]);
        assert_eq!(rate.baseline(), 20.0);
        let unknown = limits(
            "funnel statistic=odds x=denominator y=dsr label=area",
            &batch,
        );
        assert!(unknown.is_err_and(|e| e.to_string().contains("'odds'")));
        Ok(())
    }
}
