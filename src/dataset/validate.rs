//! Checking a table's Parquet files before any query reads them, so that bad input fails with the
//! file, the column and the problem named, instead of a planner error or a silent miscount.
//!
//! Every file's footer is read (cheap: no data pages). A file that is not Parquet, a column of the
//! wrong kind, or a column whose type differs between files is an error. A column missing from
//! only some files is read as NULL there, with a warning, as DataFusion's schema merge does; one
//! missing from every file is only an error for a statement that uses it (`dataset::missing_column`).

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use datafusion::arrow::datatypes::DataType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectMeta, ObjectStore};

use crate::dataset::partitions::{PartitionColumn, layout};
use crate::dataset::schema::{Kind, SusColumn};

/// Footers read at once: enough to hide an object store's latency.
const CONCURRENT_FOOTERS: usize = 16;

/// One table's files as checked, and the warnings to show.
#[derive(Debug, Clone, Default)]
pub struct TableCheck {
    /// The table's files.
    pub files: Vec<InputFile>,
    /// What is odd but readable (a column missing from some files), for stderr.
    pub warnings: Vec<String>,
    /// Columns the `key=value` folders give ([`crate::dataset::partitions`]).
    pub partitions: Vec<PartitionColumn>,
}

/// A file a table reads, as a run manifest records it.
#[derive(Debug, Clone)]
pub struct InputFile {
    /// The table it belongs to (`opa`, `apcs`).
    pub table: String,
    /// Its path or URL.
    pub path: String,
    /// Its size.
    pub bytes: u64,
    /// When it was last modified.
    pub modified: chrono::DateTime<chrono::Utc>,
}

impl InputFile {
    /// A file of `table` as its store listed it under `url`.
    fn listed(table: &str, url: &ListingTableUrl, file: &ObjectMeta) -> Self {
        Self {
            table: table.to_owned(),
            path: file_name(&url.object_store(), &file.location),
            bytes: file.size,
            modified: file.last_modified,
        }
    }
}

/// Reads the footer of every file of `table` at `location` and refuses, naming file and column,
/// what no query could read: no files, a file that is not Parquet, a column of the wrong kind, or
/// a column whose type differs between files.
pub async fn check_table(
    ctx: &SessionContext,
    table: &str,
    location: &str,
    columns: &[SusColumn],
) -> Result<TableCheck> {
    let (url, store, files) = list_files(ctx, location, ".parquet").await?;
    if files.is_empty() {
        bail!("the {table} table has no Parquet files (*.parquet) at {location}");
    }
    let schemas = read_footers(ctx, &url, &store, &files).await?;

    let mut check = TableCheck {
        files: files
            .iter()
            .map(|file| InputFile::listed(table, &url, file))
            .collect(),
        warnings: Vec::new(),
        partitions: Vec::new(),
    };
    let relative: Vec<Vec<&str>> = files
        .iter()
        .filter_map(|file| url.strip_prefix(&file.location).map(Iterator::collect))
        .collect();
    let held: Vec<&str> = schemas
        .iter()
        .flat_map(|(_, types)| types.keys().map(String::as_str))
        .collect();
    let partitioned = layout(&relative, &held, columns);
    check.partitions = partitioned.columns;
    check.warnings.extend(
        partitioned
            .warnings
            .into_iter()
            .map(|w| format!("{table} at {location}: {w}")),
    );
    for column in columns {
        check
            .warnings
            .extend(check_column(table, column, &schemas)?);
    }
    Ok(check)
}

/// Each file's name and its columns (lower-cased) with their types, read from the footers a few at
/// a time.
async fn read_footers(
    ctx: &SessionContext,
    url: &ListingTableUrl,
    store: &Arc<dyn ObjectStore>,
    files: &[ObjectMeta],
) -> Result<Vec<(String, BTreeMap<String, DataType>)>> {
    let state = ctx.state();
    // The session's Parquet options, so that the footer is read as the scans will read it.
    let format = ParquetFormat::default().with_options(state.table_options().parquet.clone());
    futures::stream::iter(files.iter().map(|file| {
        let (format, state) = (&format, &state);
        async move {
            let name = file_name(&url.object_store(), &file.location);
            let schema = format
                .infer_schema(state, store, std::slice::from_ref(file))
                .await
                .with_context(|| {
                    format!("{name} is not a readable Parquet file (truncated, or another format)")
                })?;
            let columns = schema
                .fields()
                .iter()
                .map(|field| (field.name().to_lowercase(), field.data_type().clone()))
                .collect();
            anyhow::Ok((name, columns))
        }
    }))
    .buffered(CONCURRENT_FOOTERS)
    .try_collect()
    .await
}

/// Refuses a column of the wrong kind in any file, or of different types between files; a column
/// some files lack (but not all) is a warning, returned.
fn check_column(
    table: &str,
    column: &SusColumn,
    schemas: &[(String, BTreeMap<String, DataType>)],
) -> Result<Option<String>> {
    let key = column.name.to_lowercase();
    let expected = Kind::of(&column.data_type);
    let mut first: Option<(&str, &DataType)> = None;
    let mut missing = Vec::new();
    for (file, types) in schemas {
        let Some(found) = types.get(&key) else {
            missing.push(file.as_str());
            continue;
        };
        if Kind::of(found) != expected {
            bail!(
                "{file}: column {} is {found}, but ebiq expects {} ({})",
                column.name,
                expected.map_or("another type", Kind::describe),
                column.meaning
            );
        }
        match first {
            None => first = Some((file, found)),
            Some((other, seen)) if seen != found => bail!(
                "column {} has conflicting types: {seen} in {other} but {found} in {file}",
                column.name
            ),
            Some(_) => {}
        }
    }
    // A column missing from every file is simply not there: the statements that need it fail
    // when planned, naming it (`dataset::missing_column`).
    if missing.len() < schemas.len()
        && let Some(example) = missing.first()
    {
        return Ok(Some(format!(
            "column {}.{} is missing from {} of {} files (such as {example}); read as NULL there",
            table,
            column.name,
            missing.len(),
            schemas.len()
        )));
    }
    Ok(None)
}

/// The files at `location` whose names end in `extension`, in name order, with the store they
/// are on.
async fn list_files(
    ctx: &SessionContext,
    location: &str,
    extension: &str,
) -> Result<(ListingTableUrl, Arc<dyn ObjectStore>, Vec<ObjectMeta>)> {
    let url = ListingTableUrl::parse(location)
        .with_context(|| format!("{location} is not a path or URL ebiq can read"))?;
    let store = ctx
        .runtime_env()
        .object_store(url.object_store())
        .with_context(|| format!("no object store for {location}"))?;
    let mut files: Vec<ObjectMeta> = url
        .list_all_files(&ctx.state(), store.as_ref(), extension)
        .await
        .with_context(|| format!("cannot list {location}"))?
        .try_collect()
        .await
        .with_context(|| format!("cannot list {location}"))?;
    files.sort_by(|a, b| a.location.cmp(&b.location));
    Ok((url, store, files))
}

/// The files of `table` at `location` with names ending in `extension`, as the manifest records
/// them.
pub async fn input_files(
    ctx: &SessionContext,
    table: &str,
    location: &str,
    extension: &str,
) -> Result<Vec<InputFile>> {
    let (url, _, files) = list_files(ctx, location, extension).await?;
    Ok(files
        .iter()
        .map(|file| InputFile::listed(table, &url, file))
        .collect())
}

/// A file as the user would write it, and as the run's records name it: a local path, or the
/// store's URL and the object's path.
pub fn file_name(store: &ObjectStoreUrl, location: &object_store::path::Path) -> String {
    if store.as_str().starts_with("file://") {
        format!("/{location}")
    } else {
        format!("{}{location}", store.as_str())
    }
}
