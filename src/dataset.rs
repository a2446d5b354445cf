//! A SUS dataset: where its tables are, and registering them with a session after checking their
//! files.

use std::path::Path;

use anyhow::{Context, Result, bail};
use datafusion::common::Column;
use datafusion::prelude::{Expr, ParquetReadOptions, SessionContext};

use crate::schema;
use crate::storage::{Location, register_store, subfolders};
use crate::validate::{InputFile, check_table};

/// Where a dataset's tables are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// A Parquet file, a folder of them, or a glob, for the `opa` table.
    pub opa: String,
    /// The same for `apcs`, when the dataset has one.
    pub apcs: Option<String>,
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
                    let has_apcs = folders.iter().any(|f| f == "apcs");
                    return Ok(Self {
                        opa: format!("{base}/opa/"),
                        apcs: has_apcs.then(|| format!("{base}/apcs/")),
                    });
                }
                Ok(Self {
                    opa: location.to_owned(),
                    apcs: None,
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
            let apcs_dir = local.join("apcs");
            return Ok(Self {
                opa: opa_dir.display().to_string(),
                apcs: apcs_dir.is_dir().then(|| apcs_dir.display().to_string()),
            });
        }
        Ok(Self {
            opa: path.to_owned(),
            apcs: None,
        })
    }

    /// Registers `opa` (and `apcs`) with `ctx`, with every column name in lower case so that SQL
    /// naming a column in any case resolves.
    ///
    /// Each table's files are checked first ([`check_table`]); warnings go to stderr. Returns the
    /// files the tables read.
    pub async fn register(&self, ctx: &SessionContext) -> Result<Vec<InputFile>> {
        let opa = check_table(ctx, "opa", &self.opa, schema::OPA, schema::OPA_REQUIRED).await?;
        let (mut files, mut warnings) = (opa.files, opa.warnings);
        register_table(ctx, "opa", &self.opa).await?;
        if let Some(apcs) = &self.apcs {
            let check = check_table(ctx, "apcs", apcs, schema::APCS, &[]).await?;
            files.extend(check.files);
            warnings.extend(check.warnings);
            register_table(ctx, "apcs", apcs).await?;
        }
        for warning in warnings {
            eprintln!("ebiq: warning: {warning}");
        }
        Ok(files)
    }
}

async fn register_table(ctx: &SessionContext, name: &str, path: &str) -> Result<()> {
    let frame = ctx
        .read_parquet(path, ParquetReadOptions::default())
        .await
        .with_context(|| format!("cannot read the {name} table from {path}"))?;
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
