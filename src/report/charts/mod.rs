//! Charts for the HTML report, drawn as SVG by `plotters`: what a query's `-- @chart` header asks
//! for, from the columns it names. Each drawn point also gets a transparent hover target with a
//! `<title>` (the browser shows it as a tooltip), so a reader can name any point without script.
//!
//! Colours are Okabe and Ito's palette, distinguishable with the common colour-blindnesses; SPC
//! points follow Making Data Count (blue improvement, orange concern, grey common cause). A
//! suppressed or missing value (`*`, NULL) is never drawn.

mod canvas;
mod funnel;
mod prepare;

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow, bail};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::array_value_to_string;
use plotters::prelude::*;

use self::canvas::{
    Area, BLACK_, BLUE, FONT, GREY, HEIGHT, Hovers, LIGHT, ORANGE, PURPLE, SERIES, WIDTH,
    assurance_badge, canvas, frame, legend, line_sample, ordered_axes, position_labels,
    variation_badge,
};
use self::prepare::{extent, padded, ranked_estimates, spc_periods, spc_points, top_series};

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
    /// Proportions, ratios or rates against their denominators, with funnel limits around a
    /// baseline.
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
            // `baseline=` too, except for a ratio (around 1); see `funnel.rs`.
            Self::Funnel => ("funnel", &["x", "y", "label"]),
            // Optional: `variation=` and `assurance=`, the columns of the series' icons.
            Self::Spc => ("spc", &["x", "y", "mean", "lower", "upper", "cause"]),
            Self::Interval => ("interval", &["label", "y", "lower", "upper", "reference"]),
            Self::Line => ("line", &["x", "y", "series"]),
        }
    }
}

impl ChartSpec {
    /// Reads a header value such as `funnel x=spine_imaging y=share label=provider
    /// baseline=national_share` (optional: `lower=`/`upper=` for a funnel point's own interval in
    /// its hover text, a funnel's `statistic=ratio|rate` with its `phi=`, `tau2=`, `method=` or
    /// `multiplier=`, `top=N` for line charts, `units=` for an axis).
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
    let chart = match spec.kind {
        ChartKind::Funnel => funnel::funnel(spec, &table, title),
        ChartKind::Spc => spc(spec, &table, title),
        ChartKind::Interval => interval(spec, &table, title),
        ChartKind::Line => line(spec, &table, title),
    };
    chart.with_context(|| format!("cannot draw the chart of {title}"))
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

    /// The column a header key names, or no values when the header leaves the key out.
    fn optional_numbers(&self, spec: &ChartSpec, key: &str) -> Result<Vec<Option<f64>>> {
        match spec.columns.get(key) {
            Some(name) => self.numbers(name),
            None => Ok(vec![None; self.batch.num_rows()]),
        }
    }

    /// The first text in the column a header key names (a series' icon), if the key is given.
    fn first_text(&self, spec: &ChartSpec, key: &str) -> Result<Option<String>> {
        match spec.columns.get(key) {
            Some(name) => Ok(self.text(name)?.into_iter().flatten().find(|t| t != "*")),
            None => Ok(None),
        }
    }

    /// The first number in a column that holds one value for every row (a baseline, a mean).
    fn first_number(&self, name: &str) -> Result<Option<f64>> {
        Ok(self.numbers(name)?.into_iter().flatten().next())
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

/// Text for HTML and SVG.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn spc(spec: &ChartSpec, table: &Table<'_>, title: &str) -> Result<Chart> {
    let labels: Vec<String> = table
        .text(spec.column("x"))?
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect();
    let points = spc_points(
        &table.numbers(spec.column("y"))?,
        &table.text(spec.column("cause"))?,
    );
    let periods = spc_periods(
        &table.numbers(spec.column("mean"))?,
        &table.numbers(spec.column("lower"))?,
        &table.numbers(spec.column("upper"))?,
    );
    let icons = [
        table
            .first_text(spec, "variation")?
            .map(|i| variation_badge(&i)),
        table
            .first_text(spec, "assurance")?
            .map(|i| assurance_badge(&i)),
    ];
    let values = points.iter().map(|p| p.value).chain(
        periods
            .iter()
            .flat_map(|p| [Some(p.mean), p.lower, p.upper])
            .flatten(),
    );
    let (low, high) = extent(values).map_or((0.0, 1.0), padded);
    let end = labels.len().max(1) as f64 - 0.5;
    canvas((WIDTH, HEIGHT), |root: &Area<'_>| {
        let mut chart = frame(root, title, (48, 64)).build_cartesian_2d(-0.5f64..end, low..high)?;
        ordered_axes(&mut chart, &labels, (spec.column("x"), spec.column("y")))?;
        chart.draw_series(LineSeries::new(
            points.iter().map(|p| (p.index as f64, p.value)),
            GREY.stroke_width(1),
        ))?;
        // Each calculation period's mean and limits span its own months only, so a
        // recalculation shows as a break in the lines.
        for (number, period) in periods.iter().enumerate() {
            let span = (period.first as f64 - 0.5, period.last as f64 + 0.5);
            for (value, colour, label) in [
                (Some(period.mean), BLACK_, "mean"),
                (period.lower, GREY, "process limits"),
                (period.upper, GREY, ""),
            ] {
                let Some(value) = value else { continue };
                let series = chart.draw_series(LineSeries::new(
                    vec![(span.0, value), (span.1, value)],
                    colour.stroke_width(2),
                ))?;
                if number == 0 && !label.is_empty() {
                    series.label(label).legend(line_sample(colour));
                }
            }
        }
        for (cause, name, colour) in [
            (None, "common cause", GREY),
            (Some("improvement"), "improvement", BLUE),
            (Some("concern"), "concern", ORANGE),
            (Some("neutral"), "neutral", PURPLE),
        ] {
            let marked: Vec<_> = points
                .iter()
                .filter(|p| p.cause.as_deref() == cause)
                .collect();
            if marked.is_empty() && cause == Some("neutral") {
                continue;
            }
            chart
                .draw_series(
                    marked
                        .iter()
                        .map(|p| Circle::new((p.index as f64, p.value), 5, colour.filled())),
                )?
                .label(name)
                .legend(move |(x, y)| Circle::new((x + 10, y), 5, colour.filled()));
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        let mut hovers = Hovers::default();
        for p in &points {
            let kind = p.cause.as_deref().unwrap_or("common cause");
            hovers.add(
                chart.backend_coord(&(p.index as f64, p.value)),
                &format!("{}: {} ({kind})", labels[p.index], p.value),
            );
        }
        for (slot, badge) in icons.iter().flatten().enumerate() {
            hovers.badge(slot, badge);
        }
        Ok(hovers)
    })
}

fn interval(spec: &ChartSpec, table: &Table<'_>, title: &str) -> Result<Chart> {
    let rows = ranked_estimates(
        &table.text(spec.column("label"))?,
        &table.numbers(spec.column("y"))?,
        &table.numbers(spec.column("lower"))?,
        &table.numbers(spec.column("upper"))?,
    );
    let reference = table.first_number(spec.column("reference"))?;
    let names: Vec<String> = rows.iter().map(|r| r.label.clone()).collect();
    let values = rows
        .iter()
        .flat_map(|r| [r.lower, r.upper])
        .chain(reference);
    let (low, high) = extent(values).map_or((0.0, 1.0), |(low, high)| padded((low.min(0.0), high)));
    let end = rows.len().max(1) as f64 - 0.5;
    // A row per estimate, each tall enough for its label.
    let height = (rows.len() as u32 * 15 + 130).max(HEIGHT);
    canvas((WIDTH, height), |root: &Area<'_>| {
        let mut chart =
            frame(root, title, (48, 90)).build_cartesian_2d(low.max(0.0)..high, -0.5f64..end)?;
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
            .draw()?;
        if let Some(reference) = reference {
            chart
                .draw_series(LineSeries::new(
                    vec![(reference, -0.5), (reference, end)],
                    ORANGE.stroke_width(2),
                ))?
                .label(spec.column("reference"))
                .legend(line_sample(ORANGE));
        }
        chart.draw_series(rows.iter().enumerate().map(|(i, r)| {
            ErrorBar::new_horizontal(i as f64, r.lower, r.value, r.upper, BLUE.stroke_width(1), 6)
        }))?;
        chart
            .draw_series(
                rows.iter()
                    .enumerate()
                    .map(|(i, r)| Circle::new((r.value, i as f64), 4, BLUE.filled())),
            )?
            .label(format!("{} (95% interval)", spec.column("y")))
            .legend(|(x, y)| Circle::new((x + 10, y), 4, BLUE.filled()));
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        let mut hovers = Hovers::default();
        for (i, r) in rows.iter().enumerate() {
            hovers.add(
                chart.backend_coord(&(r.value, i as f64)),
                &format!(
                    "{}: {:.3} (95% interval {:.3} to {:.3})",
                    r.label, r.value, r.lower, r.upper
                ),
            );
        }
        Ok(hovers)
    })
}

fn line(spec: &ChartSpec, table: &Table<'_>, title: &str) -> Result<Chart> {
    let top: usize = spec
        .columns
        .get("top")
        .and_then(|t| t.parse().ok())
        .unwrap_or(8)
        .min(SERIES.len());
    let lines = top_series(
        &table.text(spec.column("x"))?,
        &table.numbers(spec.column("y"))?,
        &table.text(spec.column("series"))?,
        top,
    );
    let high = lines
        .series
        .iter()
        .flat_map(|(_, values)| values.values().copied())
        .fold(1.0, f64::max);
    let end = lines.months.len().max(1) as f64 - 0.5;
    canvas((WIDTH, HEIGHT), |root: &Area<'_>| {
        let mut chart =
            frame(root, title, (48, 64)).build_cartesian_2d(-0.5f64..end, 0f64..high * 1.15)?;
        ordered_axes(
            &mut chart,
            &lines.months,
            (spec.column("x"), spec.column("y")),
        )?;
        let mut hovers = Hovers::default();
        for ((name, values), colour) in lines.series.iter().zip(SERIES) {
            let points: Vec<(f64, f64)> = values.iter().map(|(i, v)| (*i as f64, *v)).collect();
            chart
                .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))?
                .label(name.clone())
                .legend(line_sample(colour));
            chart.draw_series(points.iter().map(|p| Circle::new(*p, 3, colour.filled())))?;
            for (index, value) in values {
                hovers.add(
                    chart.backend_coord(&(*index as f64, *value)),
                    &format!("{name}, {}: {value}", lines.months[*index]),
                );
            }
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        Ok(hovers)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_headers_name_their_columns() {
        let spec = ChartSpec::parse("funnel x=n y=share label=provider baseline=national")
            .expect("a valid header");
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
        .expect("a valid batch");
        let spec = ChartSpec::parse("funnel x=n y=share label=provider baseline=national")
            .expect("a valid header");
        let chart = draw(&spec, &batch, "t").expect("drawn");
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

    #[test]
    fn an_spc_chart_breaks_its_limits_at_a_recalculation_and_draws_its_icons() {
        use std::sync::Arc;

        use datafusion::arrow::array::{Float64Array, StringArray};
        use datafusion::arrow::datatypes::{DataType, Field, Schema};

        let text = |name: &str| Field::new(name, DataType::Utf8, true);
        let number = |name: &str| Field::new(name, DataType::Float64, true);
        let schema = Arc::new(Schema::new(vec![
            text("month"),
            number("v"),
            number("mean"),
            number("lpl"),
            number("upl"),
            text("cause"),
            text("variation"),
            text("assurance"),
        ]));
        // Two periods: months 1-3 around 5, months 4-5 (recalculated) around 2.
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["m1", "m2", "m3", "m4", "m5"])),
                Arc::new(Float64Array::from(vec![5.0, 6.0, 4.0, 2.0, 1.0])),
                Arc::new(Float64Array::from(vec![5.0, 5.0, 5.0, 1.5, 1.5])),
                Arc::new(Float64Array::from(vec![1.0, 1.0, 1.0, 0.2, 0.2])),
                Arc::new(Float64Array::from(vec![9.0, 9.0, 9.0, 2.8, 2.8])),
                Arc::new(StringArray::from(vec![
                    None,
                    None,
                    None,
                    None,
                    Some("neutral"),
                ])),
                Arc::new(StringArray::from(vec![Some("neutral_low"); 5])),
                Arc::new(StringArray::from(vec![Some("inconsistent"); 5])),
            ],
        )
        .expect("a valid batch");
        let header = "spc x=month y=v mean=mean lower=lpl upper=upl cause=cause";
        let spec = ChartSpec::parse(&format!("{header} variation=variation assurance=assurance"))
            .expect("a valid header");
        let chart = draw(&spec, &batch, "t").expect("drawn");
        assert_eq!(chart.points, 5);
        assert!(
            chart
                .svg
                .contains(r#"<g class="icon variation" data-icon="neutral_low">"#)
        );
        assert!(
            chart
                .svg
                .contains(r#"<g class="icon assurance" data-icon="inconsistent">"#)
        );
        // The mean is drawn once per period: two black lines (and the legend's sample), not one
        // across the chart.
        let plain = draw(
            &ChartSpec::parse(header).expect("a valid header"),
            &batch,
            "t",
        )
        .expect("drawn");
        assert!(
            !plain.svg.contains("class=\"icon"),
            "no icons unless asked for"
        );
        let black_lines = plain
            .svg
            .matches(r##"stroke="#000000" stroke-width="2""##)
            .count();
        assert_eq!(black_lines, 3, "{}", plain.svg);
    }
}
