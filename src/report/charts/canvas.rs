//! What every chart shares: the palette, a white SVG canvas with a caption, axes, the legend, and
//! the hover targets laid over drawn points.

use std::fmt::Write as _;

use anyhow::Result;
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::{Chart, escape};

pub(super) const WIDTH: u32 = 960;
pub(super) const HEIGHT: u32 = 460;
pub(super) const FONT: &str = "sans-serif";

// Okabe and Ito's palette.
pub(super) const BLACK_: RGBColor = RGBColor(0, 0, 0);
pub(super) const ORANGE: RGBColor = RGBColor(0xE6, 0x9F, 0x00);
pub(super) const SKY: RGBColor = RGBColor(0x56, 0xB4, 0xE9);
pub(super) const GREEN: RGBColor = RGBColor(0x00, 0x9E, 0x73);
pub(super) const BLUE: RGBColor = RGBColor(0x00, 0x72, 0xB2);
pub(super) const VERMILLION: RGBColor = RGBColor(0xD5, 0x5E, 0x00);
pub(super) const PURPLE: RGBColor = RGBColor(0xCC, 0x79, 0xA7);
pub(super) const YELLOW: RGBColor = RGBColor(0xF0, 0xE4, 0x42);
pub(super) const GREY: RGBColor = RGBColor(0x80, 0x80, 0x80);
/// The minor grid: there to read values against, not to be seen first.
pub(super) const LIGHT: RGBColor = RGBColor(0xEE, 0xEE, 0xEE);
/// Series colours for line charts, in order.
pub(super) const SERIES: [RGBColor; 8] =
    [BLUE, ORANGE, GREEN, VERMILLION, SKY, PURPLE, BLACK_, YELLOW];

/// The drawing area of a chart's SVG.
pub(super) type Area<'svg> = DrawingArea<SVGBackend<'svg>, Shift>;

/// A chart over two continuous axes.
pub(super) type Plot<'a, 'svg> =
    ChartContext<'a, SVGBackend<'svg>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Draws on a white SVG canvas of `size` pixels: `draw` draws the chart and returns the hover
/// targets of its points, which are laid over it.
pub(super) fn canvas(
    size: (u32, u32),
    draw: impl FnOnce(&Area<'_>) -> Result<Hovers>,
) -> Result<Chart> {
    let mut svg = String::new();
    let hovers = {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE)?;
        let hovers = draw(&root)?;
        root.present()?;
        hovers
    };
    Ok(hovers.finish(svg))
}

/// A chart's frame on `root`: its caption, margins and room for axis labels (`x`, `y` pixels).
pub(super) fn frame<'a, 'b, 'svg>(
    root: &'a Area<'svg>,
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
pub(super) fn legend<'svg: 'a, 'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, SVGBackend<'svg>, Cartesian2d<X, Y>>,
    position: SeriesLabelPosition,
) -> Result<()> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(GREY)
        .label_font((FONT, 12))
        .position(position)
        .draw()?;
    Ok(())
}

/// Axes for values over ordered labels (months): the labels along x by position, at most 24.
pub(super) fn ordered_axes(
    chart: &mut Plot<'_, '_>,
    labels: &[String],
    (x_name, y_name): (&str, &str),
) -> Result<()> {
    let formatter = position_labels(labels);
    chart
        .configure_mesh()
        .x_labels(labels.len().min(24))
        .x_label_formatter(&formatter)
        .x_desc(x_name)
        .y_desc(y_name)
        .label_style((FONT, 12))
        .light_line_style(LIGHT)
        .max_light_lines(0)
        .draw()?;
    Ok(())
}

/// Labels (months, names) along an axis, by position: label `i` at coordinate `i`.
pub(super) fn position_labels(labels: &[String]) -> impl Fn(&f64) -> String + '_ {
    move |x: &f64| {
        let index = x.round();
        if (index - x).abs() > 1e-6 || index < 0.0 {
            return String::new();
        }
        labels.get(index as usize).cloned().unwrap_or_default()
    }
}

/// A legend entry's sample: a short line in the series' colour.
pub(super) fn line_sample(colour: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
}

/// Hover targets over drawn points, appended to the SVG: a transparent circle with a `<title>`;
/// and any icons, drawn over the chart's top right corner.
#[derive(Default)]
pub(super) struct Hovers(String, usize);

/// A Making Data Count icon: which kind, its name, colour, letter and what it means.
pub(super) struct Badge {
    kind: &'static str,
    name: String,
    colour: RGBColor,
    letter: &'static str,
    meaning: String,
}

/// The variation icon of a series, as Making Data Count draws it: a circle in the special cause's
/// colour (blue improvement, orange concern, purple neutral, grey common cause) with H or L for a
/// high or low special cause.
pub(super) fn variation_badge(icon: &str) -> Badge {
    let (colour, meaning) = match icon.split('_').next().unwrap_or_default() {
        "improvement" => (BLUE, "special cause improvement"),
        "concern" => (ORANGE, "special cause concern"),
        "neutral" => (PURPLE, "special cause, neither better nor worse"),
        _ => (GREY, "common cause variation"),
    };
    let letter = if icon.ends_with("_high") {
        "H"
    } else if icon.ends_with("_low") {
        "L"
    } else {
        "~"
    };
    Badge {
        kind: "variation",
        name: icon.to_owned(),
        colour,
        letter,
        meaning: format!("Variation: {meaning} ({icon})"),
    }
}

/// The assurance icon of a series: P (blue) the target will be met, F (orange) it will not, ?
/// (grey) it may or may not.
pub(super) fn assurance_badge(icon: &str) -> Badge {
    let (colour, letter, meaning) = match icon {
        "pass" => (BLUE, "P", "the process limits all meet the target"),
        "fail" => (ORANGE, "F", "the process limits all miss the target"),
        _ => (GREY, "?", "the target lies between the process limits"),
    };
    Badge {
        kind: "assurance",
        name: icon.to_owned(),
        colour,
        letter,
        meaning: format!("Assurance: {meaning} ({icon})"),
    }
}

impl Hovers {
    pub fn add(&mut self, (x, y): (i32, i32), text: &str) {
        let _ = write!(
            self.0,
            r#"<circle class="point" cx="{x}" cy="{y}" r="6" fill="transparent"><title>{}</title></circle>"#,
            escape(text)
        );
        self.1 += 1;
    }

    /// Draws `badge` as the `slot`-th icon from the chart's top right corner.
    pub fn badge(&mut self, slot: usize, badge: &Badge) {
        let radius = 16;
        let x = WIDTH as usize - 40 - slot * (2 * radius + 10);
        let y = 32;
        let RGBColor(r, g, b) = badge.colour;
        let _ = write!(
            self.0,
            r##"<g class="icon {kind}" data-icon="{name}"><title>{meaning}</title><circle cx="{x}" cy="{y}" r="{radius}" fill="white" stroke="#{r:02x}{g:02x}{b:02x}" stroke-width="3"/><text x="{x}" y="{text_y}" text-anchor="middle" font-family="{FONT}" font-size="16" font-weight="bold" fill="#{r:02x}{g:02x}{b:02x}">{letter}</text></g>"##,
            kind = badge.kind,
            name = escape(&badge.name),
            meaning = escape(&badge.meaning),
            text_y = y + 6,
            letter = badge.letter,
        );
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
