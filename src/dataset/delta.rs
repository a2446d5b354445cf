//! Delta Lake tables (as Databricks keeps national SUS extracts) read through the `deltalake`
//! crate, at the newest version or one named by `--as-of`.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::{Context, Result};
use datafusion::datasource::TableProvider;
use datafusion::prelude::SessionContext;
use deltalake::logstore::{
    LogStore, LogStoreFactory, ObjectStoreRef, StorageConfig, default_logstore, logstore_factories,
};
use deltalake::{DeltaResult, DeltaTable, DeltaTableBuilder};
use url::Url;

use crate::dataset::storage::{Location, register_store};
use crate::dataset::validate::InputFile;

/// Which version of a Delta table to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// A commit version (0 is the table's creation).
    Version(u64),
    /// The newest version committed at or before this time.
    Timestamp(chrono::DateTime<chrono::Utc>),
}

impl FromStr for AsOf {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Ok(version) = text.parse::<u64>() {
            return Ok(Self::Version(version));
        }
        chrono::DateTime::parse_from_rfc3339(text)
            .map(|time| Self::Timestamp(time.into()))
            .map_err(|_| {
                format!(
                    "'{text}' is neither a Delta version (such as 12) nor a time with its offset \
                     (such as 2026-04-01T00:00:00Z)"
                )
            })
    }
}

impl fmt::Display for AsOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Version(version) => write!(f, "version {version}"),
            Self::Timestamp(time) => write!(f, "{}", time.to_rfc3339()),
        }
    }
}

/// A Delta table as read: enough for a manifest to name exactly what a report counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaRead {
    /// The SUS table it was registered as (`opa`, `apcs`).
    pub table: String,
    /// Where it is.
    pub location: String,
    /// The commit version read.
    pub version: u64,
}

/// Is there a Delta table (a `_delta_log` folder) at `location`?
pub async fn is_delta_table(ctx: &SessionContext, location: &str) -> Result<bool> {
    match Location::parse(location)? {
        Location::Local(path) => Ok(std::path::Path::new(&path).join("_delta_log").is_dir()),
        Location::Remote(url) => {
            let store = register_store(ctx, &url)?;
            let folders = crate::dataset::storage::subfolders(store.as_ref(), &url).await?;
            Ok(folders.iter().any(|f| f == "_delta_log"))
        }
    }
}

/// Opens the Delta table at `location` (at `as_of`, else its newest version) as `table`: its
/// provider, the data files of that version, and what was read.
pub async fn open(
    ctx: &SessionContext,
    table: &str,
    location: &str,
    as_of: Option<AsOf>,
) -> Result<(Arc<dyn TableProvider>, Vec<InputFile>, DeltaRead)> {
    let url = table_url(location)?;
    let mut builder = DeltaTableBuilder::from_url(url.clone())
        .with_context(|| format!("{location} is not a Delta table location"))?;
    if url.scheme() != "file" {
        // The store ebiq configured from the environment, so a Delta table is reached with the
        // same credentials as Parquet files.
        let store = register_store(ctx, &url)?;
        read_log_over_any_store(url.scheme());
        builder = builder.with_storage_backend(store, url.clone());
    }
    builder = match as_of {
        Some(AsOf::Version(version)) => builder.with_version(version),
        Some(AsOf::Timestamp(time)) => builder.with_timestamp(time),
        None => builder,
    };
    let at = || match as_of {
        Some(as_of) => format!("the {table} Delta table at {location} as of {as_of}"),
        None => format!("the {table} Delta table at {location}"),
    };
    let delta: DeltaTable = builder
        .load()
        .await
        .with_context(|| format!("cannot read {}", at()))?;
    let version = delta
        .version()
        .with_context(|| format!("{} has no committed version", at()))?;
    let snapshot = delta.snapshot().with_context(at)?;
    let mut files = Vec::new();
    for file in snapshot.log_data() {
        let uri = delta.log_store().to_uri(&file.object_store_path());
        files.push(InputFile {
            table: table.to_owned(),
            path: display_path(&uri),
            bytes: u64::try_from(file.size()).unwrap_or(0),
            modified: file
                .modification_datetime()
                .unwrap_or(chrono::DateTime::UNIX_EPOCH),
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    delta
        .update_datafusion_session(&ctx.state())
        .with_context(at)?;
    let provider = delta.table_provider().await.with_context(at)?;
    let read = DeltaRead {
        table: table.to_owned(),
        location: location.to_owned(),
        version,
    };
    Ok((provider, files, read))
}

/// `deltalake` finds how to read a table's log by its URL scheme, and knows only `file://` and
/// `memory://` without its cloud crates. ebiq only reads, and brings its own object store, so the
/// default log store (plain reads of `_delta_log/`) serves every scheme ebiq can reach.
fn read_log_over_any_store(scheme: &str) {
    let Ok(key) = Url::parse(&format!("{scheme}://")) else {
        return;
    };
    let factories = logstore_factories();
    if !factories.contains_key(&key) {
        factories.insert(key, Arc::new(ReadingLogStores));
    }
}

/// Log stores for reading a table over an object store ebiq configured.
struct ReadingLogStores;

impl LogStoreFactory for ReadingLogStores {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}

/// A local path or URL as the URL `deltalake` wants (absolute, with a trailing slash).
fn table_url(location: &str) -> Result<Url> {
    match Location::parse(location)? {
        Location::Local(path) => {
            let absolute = std::fs::canonicalize(&path)
                .with_context(|| format!("the Delta table {path} does not exist"))?;
            Url::from_directory_path(&absolute)
                .map_err(|()| anyhow::anyhow!("{} is not a folder", absolute.display()))
        }
        Location::Remote(url) => {
            let text = format!("{}/", url.as_str().trim_end_matches('/'));
            Url::parse(&text).with_context(|| format!("{location} is not a URL"))
        }
    }
}

/// A file URI as the manifest writes paths: a local file as its path.
fn display_path(uri: &str) -> String {
    match Url::parse(uri) {
        Ok(url) if url.scheme() == "file" => url
            .to_file_path()
            .map_or_else(|()| uri.to_owned(), |p| p.display().to_string()),
        _ => uri.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::AsOf;

    #[test]
    fn as_of_is_a_version_or_a_time_with_its_offset() {
        assert_eq!("3".parse(), Ok(AsOf::Version(3)));
        assert!(matches!(
            "2026-04-01T00:00:00Z".parse::<AsOf>(),
            Ok(AsOf::Timestamp(t)) if t.to_rfc3339() == "2026-04-01T00:00:00+00:00"
        ));
        assert!("-1".parse::<AsOf>().is_err());
        assert!("2026-04-01".parse::<AsOf>().is_err());
        assert!("yesterday".parse::<AsOf>().is_err());
    }
}
