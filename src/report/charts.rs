//! Charts for the HTML report, drawn as SVG by `plotters`: what a query's `-- @chart` header asks
//! for, from the columns it names. Each drawn point also gets a transparent hover target with a
//! `<title>` (the browser shows it as a tooltip), so a reader can name any point without script.
//!
//! Colours are Okabe and Ito's palette, distinguishable with the common colour-blindnesses; SPC
//! points follow Making Data Count (blue improvement, orange concern, grey common cause). A
//! suppressed or missing value (`*`, NULL) is never drawn.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{Context, Result, anyhow, bail};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::array_value_to_string;
use ebiq_udfs::{funnel_limits, z_score};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

const WIDTH: u32 = 960;
const HEIGHT: u32 = 460;
const FONT: &str = "sans-serif";

const BLACK_: RGBColor = RGBColor(0, 0, 0);
const ORANGE: RGBColor = RGBColor(0xE6, 0x9F, 0x00);
const SKY: RGBColor = RGBColor(0x56, 0xB4, 0xE9);
const GREEN: RGBColor = RGBColor(0x00, 0x9E, 0x73);
const BLUE: RGBColor = RGBColor(0x00, 0x72, 0xB2);
const VERMILLION: RGBColor = RGBColor(0xD5, 0x5E, 0x00);
const PURPLE: RGBColor = RGBColor(0xCC, 0x79, 0xA7);
const YELLOW: RGBColor = RGBColor(0xF0, 0xE4, 0x42);
const GREY: RGBColor = RGBColor(0x80, 0x80, 0x80);
/// The minor grid: there to read values against, not to be seen first.
const LIGHT: RGBColor = RGBColor(0xEE, 0xEE, 0xEE);
/// Series colours for line charts, in order.
const SERIES: [RGBColor; 8] = [BLUE, ORANGE, GREEN, VERMILLION, SKY, PURPLE, BLACK_, YELLOW];

/// What a query's `-- @chart KIND key=column ...` header asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartSpec {
    /// `funnel`, `spc`, `interval` or `line`.
    pub kind: ChartKind,
    columns: BTreeMap<String, String>,
}

/// The charts the report draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChartKind {
    /// Proportions against their denominators, with funnel limits around a baseline.
    Funnel,
    /// An XmR chart: values over time with mean, process limits and special causes.
    Spc,
    /// Estimates with intervals, ordered, against a reference value.
    Interval,
    /// Values over time, one line per series (the largest few).
    Line,
}

impl ChartKind {
    /// The header word, and the keys each kind needs.
    fn needs(self) -> (&'static str, &'static [&'static str]) {
        match self {
            Self::Funnel => ("funnel", &["x", "y", "label", "baseline"]),
            Self::Spc => ("spc", &["x", "y", "mean", "lower", "upper", "cause"]),
            Self::Interval => ("interval", &["label", "y", "lower", "upper", "reference"]),
            Self::Line => ("line", &["x", "y", "series"]),
        }
    }
}

impl ChartSpec {
    /// Reads a header value such as `funnel x=spine_imaging y=share label=provider
    /// baseline=national_share` (optional: `lower=`/`upper=` for a funnel point's own interval in
    /// its hover text, `top=N` for line charts, `units=` for an interval chart's axis).
    pub fn parse(text: &str) -> Result<Self> {
        let mut words = text.split_whitespace();
        let kind_word = words.next().unwrap_or_default();
        let kind = [
            ChartKind::Funnel,
            ChartKind::Spc,
            ChartKind::Interval,
            ChartKind::Line,
        ]
        .into_iter()
        .find(|k| k.needs().0 == kind_word)
        .ok_or_else(|| {
            anyhow!("unknown chart '{kind_word}': expected funnel, spc, interval or line")
        })?;
        let mut columns = BTreeMap::new();
        for word in words {
            let (key, value) = word
                .split_once('=')
                .ok_or_else(|| anyhow!("'{word}' in the @chart header is not key=column"))?;
            columns.insert(key.to_owned(), value.to_owned());
        }
        for key in kind.needs().1 {
            if !columns.contains_key(*key) {
                bail!("a {kind_word} chart needs {key}=COLUMN in its @chart header");
            }
        }
        Ok(Self { kind, columns })
    }

    fn column(&self, key: &str) -> &str {
        self.columns.get(key).map_or("", String::as_str)
    }

    /// `units=per_100,000` as an axis suffix: `, per 100,000`.
    fn units(&self) -> String {
        self.columns
            .get("units")
            .map_or_else(String::new, |u| format!(", {}", u.replace('_', " ")))
    }
}

/// An SVG chart and the number of data points drawn.
#[derive(Debug, Clone)]
pub struct Chart {
    /// The `<svg>` element.
    pub svg: String,
    /// Data points drawn (each with a hover target of class `point`).
    pub points: usize,
}

/// Draws `spec` over `batch`, titled `title`.
pub fn draw(spec: &ChartSpec, batch: &RecordBatch, title: &str) -> Result<Chart> {
    let table = Table { batch };
    match spec.kind {
        ChartKind::Funnel => funnel(spec, &table, title),
        ChartKind::Spc => spc(spec, &table, title),
        ChartKind::Interval => interval(spec, &table, title),
        ChartKind::Line => line(spec, &table, title),
    }
}

/// A result's cells as text and numbers; `*` (suppressed) and NULL are no number.
struct Table<'a> {
    batch: &'a RecordBatch,
}

impl Table<'_> {
    fn text(&self, name: &str) -> Result<Vec<Option<String>>> {
        let column = self.batch.column_by_name(name).with_context(|| {
            format!("the @chart header names {name}, which the result has no column for")
        })?;
        (0..column.len())
            .map(|row| {
                if column.is_null(row) {
                    return Ok(None);
                }
                Ok(Some(array_value_to_string(column, row)?))
            })
            .collect()
    }

    fn numbers(&self, name: &str) -> Result<Vec<Option<f64>>> {
        Ok(self
            .text(name)?
            .into_iter()
            .map(|cell| {
                cell.and_then(|t| t.trim().parse::<f64>().ok())
                    .filter(|v| v.is_finite())
            })
            .collect())
    }
}

/// Hover targets over drawn points, appended to the SVG.
#[derive(Default)]
struct Hovers(String, usize);

impl Hovers {
    fn add(&mut self, (x, y): (i32, i32), text: &str) {
        let _ = write!(
            self.0,
            r#"<circle class="point" cx="{x}" cy="{y}" r="6" fill="transparent"><title>{}</title></circle>"#,
            escape(text)
        );
        self.1 += 1;
    }

    fn finish(self, mut svg: String) -> Chart {
        if let Some(end) = svg.rfind("</svg>") {
            svg.insert_str(end, &format!(r#"<g class="hover">{}</g>"#, self.0));
        }
        Chart {
            svg,
            points: self.1,
        }
    }
}

/// Text for HTML and SVG.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn plot_error<E: std::fmt::Display>(error: E) -> anyhow::Error {
    anyhow!("cannot draw the chart: {error}")
}

/// A chart's frame: its caption, margins and room for axis labels (`x`, `y` pixels).
fn frame<'a, 'b, 'svg>(
    root: &'a DrawingArea<SVGBackend<'svg>, plotters::coord::Shift>,
    title: &str,
    (x, y): (u32, u32),
) -> ChartBuilder<'a, 'b, SVGBackend<'svg>> {
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(title, (FONT, 18))
        .margin(12)
        .x_label_area_size(x)
        .y_label_area_size(y);
    builder
}

/// The legend, boxed, in a corner the data leaves free.
fn legend<'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    position: SeriesLabelPosition,
) -> Result<()> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(GREY)
        .label_font((FONT, 12))
        .position(position)
        .draw()
        .map_err(plot_error)
}

/// Axes for values over ordered labels (months): the labels along x by position, at most 24.
fn ordered_axes<'a>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    labels: &[String],
    spec: &ChartSpec,
) -> Result<()> {
    let formatter = position_labels(labels);
    chart
        .configure_mesh()
        .x_labels(labels.len().min(24))
        .x_label_formatter(&formatter)
        .x_desc(spec.column("x"))
        .y_desc(spec.column("y"))
        .label_style((FONT, 12))
        .light_line_style(LIGHT)
        .max_light_lines(0)
        .draw()
        .map_err(plot_error)
}

fn padded(low: f64, high: f64) -> (f64, f64) {
    let span = (high - low).abs().max(high.abs() * 0.1).max(1e-9);
    (low - span * 0.08, high + span * 0.08)
}

fn funnel(spec: &ChartSpec, table: &Table<'_>, title: &str) -> Result<Chart> {
    let (x, y, labels, baseline) = (
        table.numbers(spec.column("x"))?,
        table.numbers(spec.column("y"))?,
        table.text(spec.column("label"))?,
        table.numbers(spec.column("baseline"))?,
    );
    let baseline = baseline.iter().flatten().copied().next().unwrap_or(0.0);
    // Optional: each point's own interval, for its hover text.
    let optional = |key: &str| -> Result<Vec<Option<f64>>> {
        match spec.columns.get(key) {
            Some(name) => table.numbers(name),
            None => Ok(vec![None; x.len()]),
        }
    };
    let (own_lower, own_upper) = (optional("lower")?, optional("upper")?);
    let intervals: BTreeMap<String, (f64, f64)> = labels
        .iter()
        .zip(own_lower.iter().zip(&own_upper))
        .filter_map(|(label, (low, high))| Some((label.clone()?, ((*low)?, (*high)?))))
        .collect();
    let points: Vec<(f64, f64, String)> = x
        .iter()
        .zip(&y)
        .zip(&labels)
        .filter_map(|((x, y), label)| Some(((*x)?, (*y)?, label.clone().unwrap_or_default())))
        .filter(|(x, _, _)| *x > 0.0)
        .collect();
    // From half the smallest denominator (at least 1) to a little past the largest, as PHE's
    // funnel plots frame them; the y range takes in the points and the widest limits drawn.
    let x_max = points.iter().map(|p| p.0).fold(10.0, f64::max) * 1.3;
    let x_min =
        (points.iter().map(|p| p.0).fold(f64::INFINITY, f64::min) / 2.0).clamp(1.0, x_max / 10.0);
    let (z95, z998) = (z_score(0.95)?, z_score(0.998)?);
    let steps = 120;
    let curve = |z: f64, side: usize| -> Result<Vec<(f64, f64)>> {
        (0..=steps)
            .map(|i| {
                let n = x_min * (x_max / x_min).powf(f64::from(i) / f64::from(steps));
                let limits = funnel_limits(baseline, n, z)?.unwrap_or([0.0, 1.0]);
                Ok((n, limits[side]))
            })
            .collect()
    };
    let widest = funnel_limits(baseline, x_min, z998)?.unwrap_or([0.0, 1.0]);
    let y_values = points
        .iter()
        .map(|p| p.1)
        .chain([baseline, widest[0], widest[1]]);
    let (y_low, y_high) = y_values.fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(v), h.max(v)));
    let (y_low, y_high) = padded(y_low, y_high);
    let (y_low, y_high) = (y_low.max(0.0), y_high.min(1.0));
    let mut svg = String::new();
    let mut hovers = Hovers::default();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = frame(&root, title, (48, 64))
            .build_cartesian_2d((x_min..x_max).log_scale(), y_low..y_high)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc(format!("{} (log scale)", spec.column("x")))
            .y_desc(format!("{} (proportion)", spec.column("y")))
            .label_style((FONT, 12))
            .light_line_style(LIGHT)
            .max_light_lines(0)
            .draw()
            .map_err(plot_error)?;
        let lines = [
            (curve(z998, 1)?, VERMILLION, "99.8% limits"),
            (curve(z998, 0)?, VERMILLION, ""),
            (curve(z95, 1)?, ORANGE, "95% limits"),
            (curve(z95, 0)?, ORANGE, ""),
            (
                vec![(x_min, baseline), (x_max, baseline)],
                BLACK_,
                "national",
            ),
        ];
        for (points, colour, label) in lines {
            let series = chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))
                .map_err(plot_error)?;
            if !label.is_empty() {
                series.label(label).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
            }
        }
        let z998_limits = |n: f64| funnel_limits(baseline, n, z998).ok().flatten();
        let outside = |&(n, share, _): &(f64, f64, String)| {
            z998_limits(n).is_some_and(|[low, high]| share < low || share > high)
        };
        chart
            .draw_series(points.iter().map(|p| {
                let colour = if outside(p) { VERMILLION } else { BLUE };
                Circle::new((p.0, p.1), 4, colour.filled())
            }))
            .map_err(plot_error)?
            .label("provider")
            .legend(|(x, y)| Circle::new((x + 10, y), 4, BLUE.filled()));
        chart
            .draw_series(points.iter().filter(|p| outside(p)).map(|p| {
                EmptyElement::at((p.0, p.1)) + Text::new(p.2.clone(), (6, -14), (FONT, 12))
            }))
            .map_err(plot_error)?;
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        for (n, share, label) in &points {
            let limits = z998_limits(*n).unwrap_or([0.0, 1.0]);
            let interval = intervals
                .get(label)
                .map(|(low, high)| format!(", 95% interval {low:.4} to {high:.4}"))
                .unwrap_or_default();
            hovers.add(
                chart.backend_coord(&(*n, *share)),
                &format!(
                    "{label}: {:.0} of {n} {} ({} {share:.4}{interval}); funnel 99.8% limits {:.4} to {:.4}",
                    share * n,
                    spec.column("x"),
                    spec.column("y"),
                    limits[0],
                    limits[1]
                ),
            );
        }
        root.present().map_err(plot_error)?;
    }
    Ok(hovers.finish(svg))
}

/// Months (or any ordered labels) along the x axis, by position.
fn position_labels(labels: &[String]) -> impl Fn(&f64) -> String + '_ {
    move |x: &f64| {
        let index = x.round();
        if (index - x).abs() > 1e-6 || index < 0.0 {
            return String::new();
        }
        labels.get(index as usize).cloned().unwrap_or_default()
    }
}

fn spc(spec: &ChartSpec, table: &Table<'_>, title: &str) -> Result<Chart> {
    let labels: Vec<String> = table
        .text(spec.column("x"))?
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect();
    let (y, mean, lower, upper, cause) = (
        table.numbers(spec.column("y"))?,
        table.numbers(spec.column("mean"))?,
        table.numbers(spec.column("lower"))?,
        table.numbers(spec.column("upper"))?,
        table.text(spec.column("cause"))?,
    );
    let first = |values: &[Option<f64>]| values.iter().flatten().copied().next();
    let (mean, lower, upper) = (first(&mean), first(&lower), first(&upper));
    let drawn: Vec<(usize, f64, Option<String>)> = y
        .iter()
        .enumerate()
        .filter_map(|(i, v)| Some((i, (*v)?, cause[i].clone().filter(|c| c != "*"))))
        .collect();
    let all = drawn
        .iter()
        .map(|p| p.1)
        .chain(mean)
        .chain(lower)
        .chain(upper);
    let (low, high) = all.fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(v), h.max(v)));
    let (low, high) = if low > high {
        (0.0, 1.0)
    } else {
        padded(low, high)
    };
    let n = labels.len().max(1) as f64;
    let mut svg = String::new();
    let mut hovers = Hovers::default();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = frame(&root, title, (48, 64))
            .build_cartesian_2d(-0.5f64..n - 0.5, low..high)
            .map_err(plot_error)?;
        ordered_axes(&mut chart, &labels, spec)?;
        chart
            .draw_series(LineSeries::new(
                drawn.iter().map(|p| (p.0 as f64, p.1)),
                GREY.stroke_width(1),
            ))
            .map_err(plot_error)?;
        let x_end = n - 0.5;
        for (value, colour, label) in [
            (mean, BLACK_, "mean"),
            (lower, GREY, "process limits"),
            (upper, GREY, ""),
        ] {
            let Some(value) = value else { continue };
            let series = chart
                .draw_series(LineSeries::new(
                    vec![(-0.5, value), (x_end, value)],
                    colour.stroke_width(2),
                ))
                .map_err(plot_error)?;
            if !label.is_empty() {
                series.label(label).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
            }
        }
        for (name, colour) in [
            ("common cause", GREY),
            ("improvement", BLUE),
            ("concern", ORANGE),
        ] {
            let key = if name == "common cause" {
                None
            } else {
                Some(name)
            };
            chart
                .draw_series(
                    drawn
                        .iter()
                        .filter(|p| p.2.as_deref() == key)
                        .map(|p| Circle::new((p.0 as f64, p.1), 5, colour.filled())),
                )
                .map_err(plot_error)?
                .label(name)
                .legend(move |(x, y)| Circle::new((x + 10, y), 5, colour.filled()));
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        for (index, value, cause) in &drawn {
            let kind = cause.as_deref().unwrap_or("common cause");
            hovers.add(
                chart.backend_coord(&(*index as f64, *value)),
                &format!("{}: {value} ({kind})", labels[*index]),
            );
        }
        root.present().map_err(plot_error)?;
    }
    Ok(hovers.finish(svg))
}

fn interval(spec: &ChartSpec, table: &Table<'_>, title: &str) -> Result<Chart> {
    let (labels, y, lower, upper, reference) = (
        table.text(spec.column("label"))?,
        table.numbers(spec.column("y"))?,
        table.numbers(spec.column("lower"))?,
        table.numbers(spec.column("upper"))?,
        table.numbers(spec.column("reference"))?,
    );
    let reference = reference.iter().flatten().copied().next();
    let mut rows: Vec<(String, f64, f64, f64)> = (0..y.len())
        .filter_map(|i| Some((labels[i].clone()?, y[i]?, lower[i]?, upper[i]?)))
        .collect();
    // Lowest first, so the highest estimate is drawn at the top.
    rows.sort_by(|a, b| a.1.total_cmp(&b.1));
    let names: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let all = rows.iter().flat_map(|r| [r.2, r.3]).chain(reference);
    let (low, high) = all.fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(v), h.max(v)));
    let (low, high) = if low > high {
        (0.0, 1.0)
    } else {
        padded(low.min(0.0), high)
    };
    let n = rows.len().max(1) as f64;
    // A row per estimate, each tall enough for its label.
    let height = (rows.len() as u32 * 15 + 130).max(HEIGHT);
    let mut svg = String::new();
    let mut hovers = Hovers::default();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = frame(&root, title, (48, 90))
            .build_cartesian_2d(low.max(0.0)..high, -0.5f64..n - 0.5)
            .map_err(plot_error)?;
        let formatter = position_labels(&names);
        chart
            .configure_mesh()
            .y_labels(names.len())
            .y_label_formatter(&formatter)
            .disable_y_mesh()
            .light_line_style(LIGHT)
            .max_light_lines(0)
            .y_desc(spec.column("label"))
            .x_desc(format!(
                "{} with 95% interval{}",
                spec.column("y"),
                spec.units()
            ))
            .label_style((FONT, 12))
            .draw()
            .map_err(plot_error)?;
        if let Some(reference) = reference {
            chart
                .draw_series(LineSeries::new(
                    vec![(reference, -0.5), (reference, n - 0.5)],
                    ORANGE.stroke_width(2),
                ))
                .map_err(plot_error)?
                .label(spec.column("reference"))
                .legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], ORANGE.stroke_width(2))
                });
        }
        chart
            .draw_series(rows.iter().enumerate().map(|(i, r)| {
                ErrorBar::new_horizontal(i as f64, r.2, r.1, r.3, BLUE.stroke_width(1), 6)
            }))
            .map_err(plot_error)?;
        chart
            .draw_series(
                rows.iter()
                    .enumerate()
                    .map(|(i, r)| Circle::new((r.1, i as f64), 4, BLUE.filled())),
            )
            .map_err(plot_error)?
            .label(format!("{} (95% interval)", spec.column("y")))
            .legend(|(x, y)| Circle::new((x + 10, y), 4, BLUE.filled()));
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        for (i, (name, value, low, high)) in rows.iter().enumerate() {
            hovers.add(
                chart.backend_coord(&(*value, i as f64)),
                &format!("{name}: {value:.3} (95% interval {low:.3} to {high:.3})"),
            );
        }
        root.present().map_err(plot_error)?;
    }
    Ok(hovers.finish(svg))
}

fn line(spec: &ChartSpec, table: &Table<'_>, title: &str) -> Result<Chart> {
    let top: usize = spec
        .columns
        .get("top")
        .and_then(|t| t.parse().ok())
        .unwrap_or(8)
        .min(SERIES.len());
    let (x, y, series) = (
        table.text(spec.column("x"))?,
        table.numbers(spec.column("y"))?,
        table.text(spec.column("series"))?,
    );
    let mut months: Vec<String> = x.iter().flatten().cloned().collect();
    months.sort();
    months.dedup();
    let mut totals: BTreeMap<String, f64> = BTreeMap::new();
    let mut values: BTreeMap<String, BTreeMap<usize, f64>> = BTreeMap::new();
    for row in 0..y.len() {
        let (Some(name), Some(month), Some(value)) = (&series[row], &x[row], y[row]) else {
            continue;
        };
        let Ok(index) = months.binary_search(month) else {
            continue;
        };
        *totals.entry(name.clone()).or_default() += value;
        *values
            .entry(name.clone())
            .or_default()
            .entry(index)
            .or_default() += value;
    }
    let mut ranked: Vec<(String, f64)> = totals.into_iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranked.truncate(top);
    let high = ranked
        .iter()
        .flat_map(|(name, _)| values[name].values().copied())
        .fold(1.0, f64::max);
    let n = months.len().max(1) as f64;
    let mut svg = String::new();
    let mut hovers = Hovers::default();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = frame(&root, title, (48, 64))
            .build_cartesian_2d(-0.5f64..n - 0.5, 0f64..high * 1.15)
            .map_err(plot_error)?;
        ordered_axes(&mut chart, &months, spec)?;
        for ((name, _), colour) in ranked.iter().zip(SERIES) {
            let points: Vec<(f64, f64)> =
                values[name].iter().map(|(i, v)| (*i as f64, *v)).collect();
            chart
                .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
                .map_err(plot_error)?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
            chart
                .draw_series(points.iter().map(|p| Circle::new(*p, 3, colour.filled())))
                .map_err(plot_error)?;
            for (index, value) in &points {
                hovers.add(
                    chart.backend_coord(&(*index, *value)),
                    &format!("{name}, {}: {value}", months[*index as usize]),
                );
            }
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        root.present().map_err(plot_error)?;
    }
    Ok(hovers.finish(svg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_headers_name_their_columns() {
        let spec = ChartSpec::parse("funnel x=n y=share label=provider baseline=national")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.kind, ChartKind::Funnel);
        assert_eq!(spec.column("baseline"), "national");
        let missing = ChartSpec::parse("spc x=month y=flagged")
            .err()
            .map(|e| e.to_string());
        assert!(missing.is_some_and(|e| e.contains("mean=COLUMN")));
        assert!(ChartSpec::parse("pie x=a").is_err());
        assert!(ChartSpec::parse("line x=a y b").is_err());
    }

    #[test]
    fn funnel_outliers_are_labelled_and_every_point_can_be_hovered() {
        use std::sync::Arc;

        use datafusion::arrow::array::{Float64Array, StringArray};
        use datafusion::arrow::datatypes::{DataType, Field, Schema};

        let schema = Arc::new(Schema::new(vec![
            Field::new("provider", DataType::Utf8, false),
            Field::new("n", DataType::Float64, false),
            Field::new("share", DataType::Float64, true),
            Field::new("national", DataType::Float64, false),
        ]));
        // At n = 1000 around 0.5 the 99.8% limits are about 0.45-0.55: ROUT is far outside, RIN
        // inside, and RSUP's share was suppressed (NULL here, '*' in a suppressed report).
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["ROUT", "RIN", "RSUP"])),
                Arc::new(Float64Array::from(vec![1000.0, 1000.0, 5.0])),
                Arc::new(Float64Array::from(vec![Some(0.9), Some(0.5), None])),
                Arc::new(Float64Array::from(vec![0.5, 0.5, 0.5])),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let spec = ChartSpec::parse("funnel x=n y=share label=provider baseline=national")
            .unwrap_or_else(|e| panic!("{e}"));
        let chart = draw(&spec, &batch, "t").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(chart.points, 2, "the suppressed provider is not drawn");
        // plotters writes each text node on its own line.
        assert!(
            chart.svg.contains(">\nROUT\n</text>"),
            "the outlier is labelled"
        );
        assert!(
            !chart.svg.contains(">\nRIN\n</text>"),
            "a provider inside the limits is not"
        );
        assert!(
            chart
                .svg
                .contains("<title>ROUT: 900 of 1000 n (share 0.9000)")
        );
    }
}
