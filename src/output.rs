//! Writing results: a terminal table, CSV for spreadsheets, JSON lines for pipes, Parquet for BI
//! tools. Files are written under a temporary name in the target folder and renamed when complete,
//! so a failed or killed run never leaves a half-written file.

use std::fmt;
use std::io::Write;
use std::path::Path;
use std::str::FromStr;

use anyhow::{Context, Result};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::csv::WriterBuilder as CsvWriterBuilder;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::json::LineDelimitedWriter;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::parquet::arrow::ArrowWriter;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
    Parquet,
}

impl OutputFormat {
    pub const NAMES: [&'static str; 4] = ["table", "csv", "json", "parquet"];

    pub fn extension(self) -> &'static str {
        match self {
            Self::Table => "txt",
            Self::Csv => "csv",
            Self::Json => "json",
            Self::Parquet => "parquet",
        }
    }
}

impl FromStr for OutputFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "table" => Ok(Self::Table),
            "csv" => Ok(Self::Csv),
            "json" | "ndjson" => Ok(Self::Json),
            "parquet" => Ok(Self::Parquet),
            _ => Err(format!(
                "unknown format '{text}': expected one of {}",
                Self::NAMES.join(", ")
            )),
        }
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::NAMES[*self as usize])
    }
}

/// Writes `batches` to `out` in `format`.
pub fn write_batches(
    format: OutputFormat,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    out: &mut (impl Write + Send),
) -> Result<()> {
    match format {
        OutputFormat::Table => {
            if batches.iter().all(|b| b.num_rows() == 0) {
                let names: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                writeln!(out, "(no rows; columns: {})", names.join(", "))?;
            } else {
                writeln!(out, "{}", pretty_format_batches(batches)?)?;
            }
        }
        OutputFormat::Csv => {
            let mut writer = CsvWriterBuilder::new().with_header(true).build(&mut *out);
            if batches.is_empty() {
                writer.write(&RecordBatch::new_empty(schema.clone()))?;
            }
            for batch in batches {
                writer.write(batch)?;
            }
        }
        OutputFormat::Json => {
            let mut writer = LineDelimitedWriter::new(&mut *out);
            for batch in batches {
                writer.write(batch)?;
            }
            writer.finish()?;
        }
        OutputFormat::Parquet => {
            let mut writer = ArrowWriter::try_new(&mut *out, schema.clone(), None)?;
            for batch in batches {
                writer.write(batch)?;
            }
            writer.close()?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Writes `batches` to `path` atomically: to a temporary file beside it, then renamed over it.
pub fn write_file(
    path: &Path,
    format: OutputFormat,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<()> {
    write_atomically(path, |file| write_batches(format, schema, batches, file))
}

/// Runs `write` into a temporary file beside `path` and renames it to `path` once complete, so a
/// reader (or a failed run) never sees half a file.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> Result<()>,
) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::Builder::new()
        .prefix(".ebiq-")
        .suffix(".partial")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    write(file.as_file_mut()).with_context(|| format!("cannot write {}", path.display()))?;
    file.as_file().sync_all()?;
    file.persist(path)
        .with_context(|| format!("cannot move the finished file to {}", path.display()))?;
    Ok(())
}
