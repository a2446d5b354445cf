//! Writing results: a terminal table, CSV for spreadsheets, JSON lines for pipes, Parquet for BI
//! tools. Files are written under a temporary name in the target folder and renamed when complete,
//! so a failed or killed run never leaves a half-written file.

use std::fmt;
use std::io::{self, BufWriter, Stdout, Write};
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::csv::WriterBuilder as CsvWriterBuilder;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::json::LineDelimitedWriter;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::parquet::arrow::ArrowWriter;

/// How results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// A table for a person at a terminal.
    Table,
    /// CSV with a header, for spreadsheets.
    Csv,
    /// Tab-separated values with a header, for pasting into a spreadsheet.
    Tsv,
    /// One JSON object per line, for pipes.
    Json,
    /// Parquet, for BI tools (to a file only).
    Parquet,
    /// One HTML page with charts and tables (`ebiq report` only).
    Html,
}

impl OutputFormat {
    /// The formats' names, as `--format` takes them.
    pub const NAMES: [&'static str; 6] = ["table", "csv", "tsv", "json", "parquet", "html"];

    /// The file name extension of an output in this format.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Table => "txt",
            Self::Csv => "csv",
            Self::Tsv => "tsv",
            Self::Json => "json",
            Self::Parquet => "parquet",
            Self::Html => "html",
        }
    }
}

impl FromStr for OutputFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "table" => Ok(Self::Table),
            "csv" => Ok(Self::Csv),
            "tsv" => Ok(Self::Tsv),
            "json" | "ndjson" => Ok(Self::Json),
            "parquet" => Ok(Self::Parquet),
            "html" => Ok(Self::Html),
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

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Standard output for results, buffered. It notes when the reader has gone (`ebiq report | head`)
/// so that `main` can end quietly with success, as command-line tools do, whichever layer the
/// broken pipe error surfaced through.
#[derive(Debug)]
pub struct ResultsOut(BufWriter<Stdout>);

impl ResultsOut {
    /// Buffered standard output.
    pub fn stdout() -> Self {
        Self(BufWriter::new(io::stdout()))
    }
}

fn note_closed<T>(result: io::Result<T>) -> io::Result<T> {
    if let Err(error) = &result
        && error.kind() == io::ErrorKind::BrokenPipe
    {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
    result
}

impl Write for ResultsOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        note_closed(self.0.write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        note_closed(self.0.flush())
    }
}

/// Whether a write to standard output found the reader gone.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
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
        OutputFormat::Csv | OutputFormat::Tsv => {
            let delimiter = if format == OutputFormat::Tsv {
                b'\t'
            } else {
                b','
            };
            let mut writer = CsvWriterBuilder::new()
                .with_header(true)
                .with_delimiter(delimiter)
                .build(&mut *out);
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
        OutputFormat::Html => {
            anyhow::bail!(
                "the html format is one page for a whole report: use ebiq report --format html"
            )
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

/// Temporary files are private (0600); an output is for sharing, as a file `>` would make it.
#[cfg(unix)]
fn readable_by_others(file: &std::fs::File) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
    Ok(())
}

#[cfg(not(unix))]
fn readable_by_others(_: &std::fs::File) -> Result<()> {
    Ok(())
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
    readable_by_others(file.as_file())?;
    file.as_file().sync_all()?;
    file.persist(path)
        .with_context(|| format!("cannot move the finished file to {}", path.display()))?;
    Ok(())
}
