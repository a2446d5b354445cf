//! `ebiq generate`: synthetic SUS Parquet, deterministic for a seed, in one of the layouts extracts
//! come in: one file per table and month, or as many files each mixing every month (rows in
//! random order, or ordered by provider within each batch, as an extract sorted by provider is).
//!
//! Files are written in parallel in bounded memory (a batch and a row group per worker). Every
//! file is written under a temporary name and renamed when complete ([`write_atomically`]).

mod codes;
mod population;
mod records;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use datafusion::arrow::array::{
    ArrayRef, Date32Builder, Int32Builder, Int64Builder, RecordBatch, StringBuilder,
};
use datafusion::arrow::compute::{sort_to_indices, take_record_batch};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use population::{population_batch, population_schema};
pub use records::{ListStyle, Population, Record};

use crate::dataset::schema::{APCS, OPA, arrow_schema};
use crate::months::{Month, MonthRange};
use crate::output::write_atomically;
use crate::progress::Progress;

const BATCH_ROWS: usize = 64 * 1024;
const ROW_GROUP_ROWS: usize = 512 * 1024;

/// What to generate, already validated.
#[derive(Debug, Clone)]
pub struct GenerateSettings {
    /// Outpatient appointments to write.
    pub opa_rows: u64,
    /// Admitted spells to write.
    pub apcs_rows: u64,
    /// The dataset folder to write `opa/` and `apcs/` into.
    pub out: PathBuf,
    /// The same seed gives the same data.
    pub seed: u64,
    /// Activity months, one file per table and month.
    pub months: MonthRange,
    /// Replace `opa/` and `apcs/` if they already exist under `out`.
    pub force: bool,
    /// Writer threads.
    pub threads: usize,
    /// How rows are spread over files.
    pub layout: Layout,
}

/// How the rows of a table are spread over its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One file per month (`opa_202404.parquet`): every row of a file has the same month.
    ByMonth,
    /// As many files as months, each with rows of every month, in each batch ordered by provider.
    ByProvider,
    /// As many files as months, each with rows of every month in random order.
    Shuffled,
}

impl Layout {
    fn mixes_months(self) -> bool {
        self != Layout::ByMonth
    }
}

impl std::str::FromStr for Layout {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "by-month" => Ok(Layout::ByMonth),
            "by-provider" => Ok(Layout::ByProvider),
            "shuffled" => Ok(Layout::Shuffled),
            other => Err(format!(
                "unknown layout {other:?}: by-month, by-provider or shuffled"
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    Opa,
    Apcs,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Opa => "opa",
            Table::Apcs => "apcs",
        }
    }
}

/// One file to write: a table's rows for one month, or for any of the months.
#[derive(Debug, Clone)]
struct Job {
    table: Table,
    /// The file's name without its table and extension.
    part: String,
    /// Each row's month is one of these, at random.
    months: Arc<[Month]>,
    /// Rows of each batch in provider order.
    by_provider: bool,
    rows: u64,
    first_ident: i64,
    seed: u64,
}

/// What was written.
#[derive(Debug)]
pub struct GenerateSummary {
    /// Rows in all tables.
    pub rows: u64,
    /// Files written.
    pub files: usize,
    /// Their total size.
    pub bytes: u64,
}

/// The whole command: generates the dataset and says on stderr what was written, and how fast.
pub fn run(settings: &GenerateSettings, progress: &Progress) -> Result<()> {
    let started = Instant::now();
    let summary = generate(settings, progress)?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "wrote {} rows in {} files ({:.1} MB) to {} in {seconds:.1}s ({:.0} rows/s)",
        summary.rows,
        summary.files,
        summary.bytes as f64 / 1e6,
        settings.out.display(),
        summary.rows as f64 / seconds.max(1e-9)
    );
    Ok(())
}

/// Writes the dataset `settings` describe.
pub fn generate(settings: &GenerateSettings, progress: &Progress) -> Result<GenerateSummary> {
    let months = settings.months.months();
    let mut jobs = Vec::new();
    for (table, rows) in [
        (Table::Opa, settings.opa_rows),
        (Table::Apcs, settings.apcs_rows),
    ] {
        if rows == 0 {
            continue;
        }
        let dir = settings.out.join(table.name());
        prepare_dir(&dir, settings.force)?;
        let per_month = rows / months.len() as u64;
        let mut first_ident = 1i64;
        let every_month: Arc<[Month]> = months.clone().into();
        for (index, month) in months.iter().enumerate() {
            let rows = per_month + u64::from((index as u64) < rows % months.len() as u64);
            let (part, months) = if settings.layout.mixes_months() {
                (format!("part{:03}", index + 1), Arc::clone(&every_month))
            } else {
                (month.yyyymm(), vec![*month].into())
            };
            jobs.push(Job {
                table,
                part,
                months,
                by_provider: settings.layout == Layout::ByProvider,
                rows,
                first_ident,
                seed: settings
                    .seed
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    .wrapping_add(((table as u64) << 32) + index as u64),
            });
            first_ident += i64::try_from(rows)?;
        }
    }
    let population_dir = settings.out.join("population");
    prepare_dir(&population_dir, settings.force)?;
    let bar = progress.bar(settings.opa_rows + settings.apcs_rows, "rows");
    let population = Population::default();
    let next = AtomicUsize::new(0);
    let results: Vec<Result<u64>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..settings.threads.max(1))
            .map(|_| {
                scope.spawn(|| -> Result<u64> {
                    let mut bytes = 0;
                    while let Some(job) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
                        bytes += write_month(&settings.out, job, &population, &|n| bar.inc(n))?;
                    }
                    Ok(bytes)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| bail!("a generator thread panicked"))
            })
            .collect()
    });
    bar.finish_and_clear();
    let mut bytes = 0;
    for result in results {
        bytes += result?;
    }
    bytes += write_population(&population_dir, &population, &months)?;
    Ok(GenerateSummary {
        rows: settings.opa_rows + settings.apcs_rows,
        files: jobs.len() + 1,
        bytes,
    })
}

/// Writes the residents of every commissioner for each calendar year the months touch, as
/// `population/population.parquet`; returns its size.
fn write_population(dir: &Path, population: &Population, months: &[Month]) -> Result<u64> {
    let mut years: Vec<i32> = months.iter().map(Month::year).collect();
    years.dedup();
    let batch = population_batch(population, &years)?;
    let path = dir.join("population.parquet");
    write_atomically(&path, |file| {
        let mut writer = ArrowWriter::try_new(file, batch.schema(), None)?;
        writer.write(&batch)?;
        writer.close()?;
        Ok(())
    })?;
    Ok(fs::metadata(&path)?.len())
}

fn prepare_dir(dir: &Path, force: bool) -> Result<()> {
    if dir.exists() {
        let occupied = fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_some();
        if occupied && !force {
            bail!(
                "{} already holds files; pass --force to replace them",
                dir.display()
            );
        }
        if occupied {
            fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
        }
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

/// Writes one month of one table; returns the file's size.
fn write_month(
    out: &Path,
    job: &Job,
    population: &Population,
    advance: &dyn Fn(u64),
) -> Result<u64> {
    let columns = match job.table {
        Table::Opa => OPA,
        Table::Apcs => APCS,
    };
    let schema = arrow_schema(columns);
    let path =
        out.join(job.table.name())
            .join(format!("{}_{}.parquet", job.table.name(), job.part));
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build();
    write_atomically(&path, |file| {
        let mut writer = ArrowWriter::try_new(file, Arc::clone(&schema), Some(properties))?;
        let mut rng = ChaCha8Rng::seed_from_u64(job.seed);
        let mut record = Record::default();
        let mut written = 0u64;
        while written < job.rows {
            let rows = usize::try_from((job.rows - written).min(BATCH_ROWS as u64))?;
            let ident = job.first_ident + i64::try_from(written)?;
            let mut batch = RecordBatch::try_new(
                Arc::clone(&schema),
                build_batch(job, population, &mut rng, &mut record, ident, rows)?,
            )?;
            if job.by_provider {
                batch = by_provider(&batch)?;
            }
            writer.write(&batch)?;
            written += rows as u64;
            advance(rows as u64);
        }
        writer.close()?;
        Ok(())
    })?;
    Ok(fs::metadata(&path)?.len())
}

fn build_batch(
    job: &Job,
    population: &Population,
    rng: &mut ChaCha8Rng,
    record: &mut Record,
    first_ident: i64,
    rows: usize,
) -> Result<Vec<ArrayRef>> {
    let style = match job.table {
        Table::Opa => ListStyle::Comma,
        Table::Apcs => ListStyle::Episodes,
    };
    let text = || StringBuilder::with_capacity(rows, rows * 6);
    let mut ident = Int64Builder::with_capacity(rows);
    let (mut provider, mut site, mut commissioner) = (text(), text(), text());
    let mut date = Date32Builder::with_capacity(rows);
    let mut discharge = Date32Builder::with_capacity(rows);
    let mut month = text();
    let (mut age_start, mut age_activity) = (
        Int32Builder::with_capacity(rows),
        Int32Builder::with_capacity(rows),
    );
    let (mut procedures, mut diagnoses) = (text(), text());
    let (mut admin, mut tfc_or_method, mut attendance) = (text(), text(), text());
    let mut sex = text();
    let months: Vec<(String, i32, i32)> = job
        .months
        .iter()
        .map(|month| (month.yyyymm(), month.first_day_since_epoch(), month.days()))
        .collect();
    for row in 0..rows {
        let (yyyymm, first_day, days) = match months.as_slice() {
            [one] => one,
            any => &any[rand::Rng::random_range(rng, 0..any.len())],
        };
        let (first_day, days) = (*first_day, *days);
        population.sample(rng, style, record);
        ident.append_value(first_ident + row as i64);
        provider.append_value(&record.provider);
        site.append_value(&record.site);
        commissioner.append_value(&record.commissioner);
        let day = first_day + rand::Rng::random_range(rng, 0..days);
        date.append_value(day);
        discharge.append_value(day + rand::Rng::random_range(rng, 0..6));
        month.append_value(yyyymm);
        age_start.append_option(record.age_at_start);
        age_activity.append_option(record.age_at_activity);
        procedures.append_option(record.procedures.as_deref());
        diagnoses.append_option(record.diagnoses.as_deref());
        admin.append_option(record.admin_category);
        match job.table {
            Table::Opa => {
                tfc_or_method.append_value(record.treatment_function);
                attendance.append_value(record.attendance);
            }
            Table::Apcs => tfc_or_method.append_value(record.admission_method),
        }
        sex.append_value(records::sex(job.seed, first_ident + row as i64));
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(ident.finish()),
        Arc::new(provider.finish()),
        Arc::new(site.finish()),
        Arc::new(commissioner.finish()),
        Arc::new(date.finish()),
    ];
    if job.table == Table::Apcs {
        columns.push(Arc::new(discharge.finish()));
    }
    columns.extend([
        Arc::new(month.finish()) as ArrayRef,
        Arc::new(age_start.finish()),
        Arc::new(age_activity.finish()),
        Arc::new(procedures.finish()),
        Arc::new(diagnoses.finish()),
        Arc::new(admin.finish()),
        Arc::new(tfc_or_method.finish()),
    ]);
    if job.table == Table::Opa {
        columns.push(Arc::new(attendance.finish()));
    }
    columns.push(Arc::new(sex.finish()));
    Ok(columns)
}

/// `batch`'s rows ordered by provider.
fn by_provider(batch: &RecordBatch) -> Result<RecordBatch> {
    let provider = batch
        .column_by_name("Der_Provider_Code")
        .context("the generated table has no Der_Provider_Code")?;
    let order = sort_to_indices(provider, None, None)?;
    Ok(take_record_batch(batch, &order)?)
}
