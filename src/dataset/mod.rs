//! A SUS dataset: where its tables are, and registering them with a session after checking their
//! files. Its submodules import only each other: the SUS columns ([`schema`]), the Parquet footer
//! checks ([`validate`]), `key=value` folders ([`partitions`]), Delta tables ([`delta`]) and object
//! stores ([`storage`]).

pub mod delta;
pub mod partitions;
pub mod schema;
pub mod storage;
pub mod validate;

use std::path::Path;

use anyhow::{Context, Result, bail};
use datafusion::common::{Column, DataFusionError, SchemaError};
use datafusion::prelude::{CsvReadOptions, DataFrame, Expr, ParquetReadOptions, SessionContext};

use self::delta::{AsOf, DeltaRead, is_delta_table};
use self::partitions::PartitionColumn;
use self::storage::{Location, register_store, subfolders};
use self::validate::{InputFile, check_table, input_files};

/// Where a dataset's tables are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// A Parquet file, a folder of them, or a glob, for the `opa` table.
    pub opa: String,
    /// The same for `apcs`, when the dataset has one.
    pub apcs: Option<String>,
    /// A folder of Parquet or CSV files for the `population` table, when the dataset has one.
    pub population: Option<String>,
}

impl Dataset {
    /// A dataset folder holding `opa/` (and perhaps `apcs/`), or else one path, glob or URL that is
    /// the `opa` table. A URL's object store is registered with `ctx` on the way.
    pub async fn locate(ctx: &SessionContext, location: &str) -> Result<Self> {
        match Location::parse(location)? {
            Location::Local(path) => Self::locate_local(&path),
            Location::Remote(url) => {
                let store = register_store(ctx, &url)?;
                let folders = subfolders(store.as_ref(), &url).await?;
                let base = location.trim_end_matches('/');
                if folders.iter().any(|f| f == "opa") {
                    let folder = |name: &str| {
                        folders
                            .iter()
                            .any(|f| f == name)
                            .then(|| format!("{base}/{name}/"))
                    };
                    return Ok(Self {
                        opa: format!("{base}/opa/"),
                        apcs: folder("apcs"),
                        population: folder("population"),
                    });
                }
                Ok(Self {
                    opa: location.to_owned(),
                    apcs: None,
                    population: None,
                })
            }
        }
    }

    fn locate_local(path: &str) -> Result<Self> {
        let is_glob = path.contains(['*', '?', '[']);
        let local = Path::new(path);
        if !is_glob && !local.exists() {
            bail!("the dataset {path} does not exist");
        }
        // Absolute, so that a cluster's executors (started elsewhere) read the same files.
        let absolute = if is_glob {
            None
        } else {
            std::fs::canonicalize(local).ok()
        };
        let local = absolute.as_deref().unwrap_or(local);
        let path = &local.display().to_string();
        let opa_dir = local.join("opa");
        if opa_dir.is_dir() {
            let folder = |name: &str| {
                let dir = local.join(name);
                dir.is_dir().then(|| dir.display().to_string())
            };
            return Ok(Self {
                opa: opa_dir.display().to_string(),
                apcs: folder("apcs"),
                population: folder("population"),
            });
        }
        Ok(Self {
            opa: path.to_owned(),
            apcs: None,
            population: None,
        })
    }

    /// Registers `opa` (and `apcs`) with `ctx`, with every column name in lower case so that SQL
    /// naming a column in any case resolves. A table that is a Delta table is read at `as_of`
    /// (else its newest version); any other is Parquet files, checked first ([`check_table`]).
    /// Warnings go to stderr.
    pub async fn register(&self, ctx: &SessionContext, as_of: Option<AsOf>) -> Result<Registered> {
        // No column is required here: a statement that needs one the files lack fails when it is
        // planned, naming itself, the column and a file ([`missing_column`]).
        let mut registered = Registered::default();
        let mut warnings = Vec::new();
        let tables = [
            ("opa", Some(&self.opa), schema::OPA),
            ("apcs", self.apcs.as_ref(), schema::APCS),
        ];
        for (name, location, columns) in tables {
            let Some(location) = location else { continue };
            if is_delta_table(ctx, location).await? {
                let (provider, files, read) = delta::open(ctx, name, location, as_of).await?;
                let frame = ctx
                    .read_table(provider)
                    .with_context(|| format!("cannot read the {name} Delta table {location}"))?;
                register_frame(ctx, name, frame)?;
                registered.files.extend(files);
                registered.delta.push(read);
            } else {
                let check = check_table(ctx, name, location, columns).await?;
                register_table(ctx, name, location, &check.partitions).await?;
                registered.files.extend(check.files);
                warnings.extend(check.warnings);
            }
        }
        if as_of.is_some() && registered.delta.is_empty() {
            bail!(
                "--as-of reads a Delta table at a version, but {} is not one (it has no _delta_log \
                 folder)",
                self.opa
            );
        }
        if let Some(population) = &self.population {
            registered
                .files
                .extend(register_population(ctx, population).await?);
        }
        for warning in warnings {
            eprintln!("ebiq: warning: {warning}");
        }
        Ok(registered)
    }
}

/// What registering a dataset read.
#[derive(Debug, Clone, Default)]
pub struct Registered {
    /// The files the tables read.
    pub files: Vec<InputFile>,
    /// The Delta tables among them, with the version read.
    pub delta: Vec<DeltaRead>,
}

/// The columns a population file must have (any case); `age` may be `age_band` instead.
const POPULATION_COLUMNS: [&str; 4] = ["area_code", "year", "sex", "population"];

/// Registers `population` over a folder of ONS-style long-form files (Parquet, else CSV with a
/// header): the raw rows as `population_source`, and `population` as one row per area, year,
/// sex (`'1'` male, `'2'` female) and ESP 2013 age band, however the files give sex (1/2, M/F,
/// male/female) and age (single years, or 5-year bands). Rows of any other sex (such as
/// persons totals) are left out, so they are never counted twice.
async fn register_population(ctx: &SessionContext, dir: &str) -> Result<Vec<InputFile>> {
    let mut files = input_files(ctx, "population", dir, ".parquet").await?;
    let frame = if files.is_empty() {
        files = input_files(ctx, "population", dir, ".csv").await?;
        if files.is_empty() {
            bail!("the population folder {dir} has no .parquet or .csv files");
        }
        ctx.read_csv(dir, CsvReadOptions::new().file_extension(".csv"))
            .await
            .with_context(|| format!("cannot read the population CSV files in {dir}"))?
    } else {
        ctx.read_parquet(dir, ParquetReadOptions::default())
            .await
            .with_context(|| format!("cannot read the population Parquet files in {dir}"))?
    };
    let names: Vec<String> = frame
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().to_lowercase())
        .collect();
    for column in POPULATION_COLUMNS {
        if !names.iter().any(|n| n == column) {
            bail!(
                "the population files in {dir} have no column {column} (they need area_code, \
                 year, sex, age or age_band, and population; they have {})",
                names.join(", ")
            );
        }
    }
    let age = ["age", "age_band"]
        .into_iter()
        .find(|a| names.iter().any(|n| n == a))
        .with_context(|| {
            format!("the population files in {dir} have no column age (or age_band)")
        })?;
    let name = if names.iter().any(|n| n == "area_name") {
        "CAST(area_name AS VARCHAR)"
    } else {
        "CAST(NULL AS VARCHAR)"
    };
    register_frame(ctx, "population_source", frame)?;
    let view = format!(
        "CREATE VIEW population AS \
         SELECT area_code, max(area_name) AS area_name, year, sex, age_band, \
                sum(population) AS population \
         FROM (SELECT CAST(area_code AS VARCHAR) AS area_code, {name} AS area_name, \
                      CAST(year AS INT) AS year, \
                      CASE upper(trim(CAST(sex AS VARCHAR))) \
                           WHEN '1' THEN '1' WHEN 'M' THEN '1' WHEN 'MALE' THEN '1' \
                           WHEN '2' THEN '2' WHEN 'F' THEN '2' WHEN 'FEMALE' THEN '2' END AS sex, \
                      esp_age_band({age}) AS age_band, CAST(population AS BIGINT) AS population \
               FROM population_source) AS rows \
         WHERE sex IS NOT NULL AND age_band IS NOT NULL \
         GROUP BY area_code, year, sex, age_band"
    );
    ctx.sql(&view)
        .await
        .with_context(|| format!("cannot register the population table over {dir}"))?;
    Ok(files)
}

async fn register_table(
    ctx: &SessionContext,
    name: &str,
    path: &str,
    partitions: &[PartitionColumn],
) -> Result<()> {
    let partition_columns = partitions
        .iter()
        .map(|column| (column.name.clone(), column.data_type.clone()))
        .collect();
    let options = ParquetReadOptions::default().table_partition_cols(partition_columns);
    let frame = ctx
        .read_parquet(path, options)
        .await
        .with_context(|| format!("cannot read the {name} table from {path}"))?;
    register_frame(ctx, name, frame)
}

/// Registers `frame` as the view `name` with its column names in lower case.
fn register_frame(ctx: &SessionContext, name: &str, frame: DataFrame) -> Result<()> {
    let lower_case: Vec<Expr> = frame
        .schema()
        .fields()
        .iter()
        .map(|field| {
            Expr::Column(Column::new_unqualified(field.name())).alias(field.name().to_lowercase())
        })
        .collect();
    let view = frame.select(lower_case)?.into_view();
    ctx.register_table(name, view)
        .with_context(|| format!("cannot register table {name}"))?;
    Ok(())
}

/// If `error` is a statement's planning failing on a SUS column no file of the dataset has, the
/// error a person needs instead: the statement (from the error's own context), the column with its SUS
/// meaning, and a file that lacks it.
pub fn missing_column(error: &anyhow::Error, inputs: &[InputFile]) -> Option<anyhow::Error> {
    let field = error.chain().find_map(|cause| {
        let root = cause.downcast_ref::<DataFusionError>()?.find_root();
        match root {
            DataFusionError::SchemaError(inner, _) => match inner.as_ref() {
                SchemaError::FieldNotFound { field, .. } => Some(field.name().to_owned()),
                _ => None,
            },
            _ => None,
        }
    })?;
    missing_sus_column(&error.to_string(), &field, inputs).map(anyhow::Error::msg)
}

/// If `field` is a SUS column, what a person needs to know when `statement` fails on it: the
/// column with its SUS meaning, and a file of the dataset that lacks it. `None` for any other name,
/// a mistake in the SQL that DataFusion's own message (with the valid names) explains better.
pub fn missing_sus_column(statement: &str, field: &str, inputs: &[InputFile]) -> Option<String> {
    let known = schema::OPA
        .iter()
        .chain(schema::APCS)
        .find(|c| c.name.eq_ignore_ascii_case(field))?;
    let column = format!("{} ({})", known.name, known.meaning);
    let example = inputs
        .iter()
        .find(|f| f.table == "opa")
        .map_or_else(String::new, |f| format!(", such as {}", f.path));
    Some(format!(
        "{statement} needs the column {column}, which the dataset's files do not have{example}"
    ))
}
