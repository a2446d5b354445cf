//! Building the DataFusion session every command shares: configuration, the rule functions, and the
//! SUS tables over a dataset.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use datafusion::common::Column;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{Expr, ParquetReadOptions, SessionConfig, SessionContext};
use ebiq_udfs::{EbiqOptions, NullMode, Rule, builtin_rules, load_rules, register_rules};

use crate::schema;
use crate::storage::{Location, register_store, subfolders};
use crate::validate::{InputFile, check_table};

/// Where the rules come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleSource {
    /// The rule files built into the binary (`udfs/rules/`).
    BuiltIn,
    /// Every `*.sql` rule file in a folder.
    Folder(PathBuf),
}

/// How to set a session up, already validated.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    pub rules: RuleSource,
    pub null_mode: NullMode,
    /// Partitions a query is split into; 0 means one per core.
    pub target_partitions: usize,
    /// Bytes the query operators may hold; past it sorts, joins and aggregations spill to disk
    /// (in the system temporary folder, `TMPDIR`). `None`: no limit.
    pub memory_limit: Option<usize>,
    /// A Ballista scheduler (`df://HOST:PORT`) to run queries on instead of this process.
    pub cluster: Option<String>,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            rules: RuleSource::BuiltIn,
            null_mode: NullMode::default(),
            target_partitions: 0,
            memory_limit: None,
            cluster: None,
        }
    }
}

/// [`new_session`], made a client of the Ballista cluster when `settings.cluster` names one.
pub async fn connect_session(settings: &SessionSettings) -> Result<SessionContext> {
    let ctx = new_session(settings)?;
    let Some(url) = &settings.cluster else {
        return Ok(ctx);
    };
    // Ballista's client state starts again from its own function list: register ours on it.
    let mut ctx = crate::cluster::connect(ctx, url).await?;
    register_rules(&mut ctx, &rules(&settings.rules)?)
        .context("cannot register the rule functions")?;
    Ok(ctx)
}

/// A session with the rule functions registered and `ebiq.*` settings available, but no tables.
pub fn new_session(settings: &SessionSettings) -> Result<SessionContext> {
    let options = EbiqOptions {
        null_mode: settings.null_mode,
    };
    let mut config = SessionConfig::new()
        .with_option_extension(options)
        .with_information_schema(true);
    if settings.target_partitions > 0 {
        config = config.with_target_partitions(settings.target_partitions);
    }
    let mut runtime = RuntimeEnvBuilder::new();
    if let Some(limit) = settings.memory_limit {
        // Each sort sets this much aside to merge its spill files; DataFusion's 10 MB default
        // would take all of a small limit before any row is sorted.
        let partitions = config.target_partitions().max(1);
        let execution = &mut config.options_mut().execution;
        execution.sort_spill_reservation_bytes = execution
            .sort_spill_reservation_bytes
            .min(limit / (4 * partitions));
        // Fair rather than greedy: every spilling operator of a query gets its share, so one
        // cannot starve the others into failing.
        runtime = runtime.with_memory_pool(Arc::new(FairSpillPool::new(limit)));
    }
    let runtime = runtime
        .build_arc()
        .context("cannot set up the query runtime")?;
    let mut ctx = SessionContext::new_with_config_rt(config, runtime);
    register_rules(&mut ctx, &rules(&settings.rules)?)
        .context("cannot register the rule functions")?;
    Ok(ctx)
}

/// The rules `source` names.
pub fn rules(source: &RuleSource) -> Result<Vec<Arc<Rule>>> {
    match source {
        RuleSource::BuiltIn => builtin_rules(),
        RuleSource::Folder(dir) => load_rules(dir),
    }
    .context("cannot load the EBI rules")
}

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
}

/// Registers `opa` (and `apcs`) over `dataset`, with every column name in lower case so that SQL
/// naming a column in any case resolves.
///
/// Each table's files are checked first ([`check_table`]); warnings go to stderr. Returns the
/// files the tables read.
pub async fn register_dataset(ctx: &SessionContext, dataset: &Dataset) -> Result<Vec<InputFile>> {
    let opa = check_table(ctx, "opa", &dataset.opa, schema::OPA, schema::OPA_REQUIRED).await?;
    let (mut files, mut warnings) = (opa.files, opa.warnings);
    register_table(ctx, "opa", &dataset.opa).await?;
    if let Some(apcs) = &dataset.apcs {
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
