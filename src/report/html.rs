//! `ebiq report --format html`: one self-contained page with every query's result, a chart where
//! the query's `-- @chart` header asks for one, and the table below it. Nothing is loaded from
//! anywhere (NHS networks block outside resources): the charts are inline SVG, the style is inline
//! CSS, and there is no script; a point's hover text is its SVG `<title>`.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::util::display::array_value_to_string;

use super::QueryFile;
use super::charts::{ChartSpec, draw, escape};

/// What the page says was run, as the manifest records it.
#[derive(Debug, Clone)]
pub struct PageInfo {
    /// Each rule: name, title, and its edition (`-- @version`, `-- @effective`, and the SHA-256 of
    /// its text, shortened).
    pub rules: Vec<(String, String, String)>,
    /// `intended` or `strict_tsql`.
    pub null_mode: String,
    /// The months asked for.
    pub months: String,
    /// The dataset.
    pub data: String,
    /// Whether small numbers were suppressed.
    pub suppressed: bool,
    /// When the run started (RFC 3339).
    pub started: String,
}

const STYLE: &str = r#"
:root { color-scheme: light; --ink: #1d1d1b; --muted: #5f5f5f; --rule: #d9d9d9; --band: #f4f6f8; }
* { box-sizing: border-box; }
body { font-family: Arial, "Helvetica Neue", sans-serif; color: var(--ink); margin: 0 auto; max-width: 1000px; padding: 16px 20px 48px; line-height: 1.45; }
h1 { font-size: 1.6rem; margin: 0.2rem 0 0.6rem; }
h2 { font-size: 1.2rem; margin: 0 0 0.3rem; }
header dl.run { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; font-size: 0.9rem; margin: 0 0 12px; }
header dt { color: var(--muted); }
header dd { margin: 0; }
nav ol { font-size: 0.9rem; columns: 2; margin: 0 0 16px; }
section { border-top: 2px solid var(--rule); padding-top: 14px; margin-top: 22px; }
p.about { color: var(--muted); font-size: 0.88rem; margin: 0 0 10px; }
figure { margin: 0 0 12px; }
figure svg { width: 100%; height: auto; display: block; }
figcaption { font-size: 0.85rem; color: var(--muted); }
circle.point:hover { fill: rgba(0, 0, 0, 0.15); }
.table-wrap { max-height: 420px; overflow: auto; border: 1px solid var(--rule); }
table { border-collapse: collapse; font-size: 0.82rem; width: 100%; }
th, td { padding: 3px 8px; text-align: left; border-bottom: 1px solid var(--rule); white-space: nowrap; }
th { position: sticky; top: 0; background: #fff; border-bottom: 2px solid var(--ink); }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: var(--band); }
@page { size: A4; margin: 12mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 10pt; }
  nav { display: none; }
  section { break-before: page; border-top: none; }
  figure { break-inside: avoid; }
  .table-wrap { max-height: none; overflow: visible; border: none; }
  table { font-size: 7pt; }
  th, td { padding: 1px 3px; }
  th { position: static; white-space: normal; word-break: break-all; }
}
"#;

/// One query's result, as the page shows it.
#[derive(Debug)]
pub struct Shown<'a> {
    /// The query.
    pub query: &'a QueryFile,
    /// Its result's schema.
    pub schema: &'a SchemaRef,
    /// Its result.
    pub batches: &'a [RecordBatch],
}

/// The page.
pub fn render(info: &PageInfo, results: &[Shown<'_>]) -> Result<String> {
    let title = info
        .rules
        .iter()
        .map(|(_, title, _)| title.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let mut page = String::with_capacity(1 << 20);
    let _ = write!(
        page,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>EBI report: {t}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<header>\n\
         <h1>Evidence-Based Interventions: {t}</h1>\n<dl class=\"run\">\n",
        t = escape(&title)
    );
    let rules: Vec<String> = info
        .rules
        .iter()
        .map(|(name, title, edition)| format!("{title} ({name}, {edition})"))
        .collect();
    let engine = format!(
        "ebiq {} on DataFusion {}",
        env!("CARGO_PKG_VERSION"),
        datafusion::DATAFUSION_VERSION
    );
    let suppression = if info.suppressed {
        "small numbers suppressed (1-7 shown as *, others rounded to 5)"
    } else {
        "none: not for publication"
    };
    for (term, value) in [
        ("Rule", rules.join("; ").as_str()),
        ("NULL reading", info.null_mode.as_str()),
        ("Months", info.months.as_str()),
        ("Data", info.data.as_str()),
        ("Suppression", suppression),
        ("Engine", engine.as_str()),
        ("Run at", info.started.as_str()),
    ] {
        let _ = writeln!(page, "<dt>{}</dt><dd>{}</dd>", escape(term), escape(value));
    }
    page.push_str("</dl>\n</header>\n<nav aria-label=\"Contents\"><ol>\n");
    for shown in results {
        let _ = writeln!(
            page,
            "<li><a href=\"#{id}\">{title}</a></li>",
            id = escape(&shown.query.name),
            title = escape(short_title(&shown.query.title))
        );
    }
    page.push_str("</ol></nav>\n<main>\n");
    for shown in results {
        section(&mut page, shown)?;
    }
    page.push_str("</main>\n</body>\n</html>\n");
    Ok(page)
}

/// The title up to its first colon: the leading comments say what, then how.
fn short_title(title: &str) -> &str {
    title.split_once(':').map_or(title, |(short, _)| short)
}

fn section(page: &mut String, shown: &Shown<'_>) -> Result<()> {
    let query = shown.query;
    let batch = concat_batches(shown.schema, shown.batches)
        .with_context(|| format!("cannot gather the result of {}", query.name))?;
    let _ = write!(
        page,
        "<section id=\"{id}\">\n<h2>{title}</h2>\n<p class=\"about\">{about} <br>Query {id}, {rows} rows.</p>\n",
        id = escape(&query.name),
        title = escape(short_title(&query.title)),
        about = escape(
            query
                .title
                .split_once(':')
                .map_or("", |(_, rest)| rest.trim())
        ),
        rows = batch.num_rows()
    );
    if let Some(spec) = &query.chart {
        let spec =
            ChartSpec::parse(spec).with_context(|| format!("query {}", query.path.display()))?;
        let chart = draw(&spec, &batch, short_title(&query.title))
            .with_context(|| format!("query {}", query.path.display()))?;
        let _ = write!(
            page,
            "<figure data-chart=\"{kind:?}\" data-points=\"{points}\">\n{svg}\n<figcaption>{points} points drawn; \
             hover over one for its values. Suppressed values are not drawn.</figcaption>\n</figure>\n",
            kind = spec.kind,
            points = chart.points,
            svg = chart.svg
        );
    }
    page.push_str("<div class=\"table-wrap\"><table>\n<thead><tr>");
    for field in shown.schema.fields() {
        let _ = write!(page, "<th scope=\"col\">{}</th>", escape(field.name()));
    }
    page.push_str("</tr></thead>\n<tbody>\n");
    let numeric: Vec<bool> = batch
        .columns()
        .iter()
        .map(|c| c.data_type().is_numeric())
        .collect();
    for row in 0..batch.num_rows() {
        page.push_str("<tr>");
        for (column, &is_number) in batch.columns().iter().zip(&numeric) {
            let text = if column.is_null(row) {
                String::new()
            } else {
                array_value_to_string(column, row)?
            };
            let class = if is_number || text == "*" {
                " class=\"n\""
            } else {
                ""
            };
            let _ = write!(page, "<td{class}>{}</td>", escape(&text));
        }
        page.push_str("</tr>\n");
    }
    page.push_str("</tbody>\n</table></div>\n</section>\n");
    Ok(())
}
