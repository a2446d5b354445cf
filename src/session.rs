//! The session every querying command shares, opened in one step over a dataset: configuration,
//! the rule functions (loaded once), the Ballista connection when there is one, and the SUS tables.

use std::fmt;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use ebiq_udfs::{EbiqOptions, NullMode, register_rules};

use crate::cluster;
use crate::dataset::Dataset;
use crate::dataset::delta::{AsOf, DeltaRead};
use crate::dataset::storage::Location;
use crate::dataset::validate::InputFile;
use crate::rules::{RuleSource, Rules};

/// How to open a session, already validated.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// The dataset: a folder holding `opa/` (and `apcs/`), or a path, glob or URL for `opa`.
    pub data: String,
    /// Where the rule files come from.
    pub rules: RuleSource,
    /// How NULLs in exclusion columns count (`ebiq.null_mode`).
    pub null_mode: NullMode,
    /// Partitions a query is split into; 0 means one per core.
    pub target_partitions: usize,
    /// Bytes the query operators may hold; past it sorts, joins and aggregations spill to disk
    /// (in the system temporary folder, `TMPDIR`). `None`: no limit.
    pub memory_limit: Option<usize>,
    /// A Ballista scheduler (`df://HOST:PORT`) to run queries on instead of this process.
    pub cluster: Option<String>,
    /// The version of the dataset's Delta tables to read; `None`: the newest.
    pub as_of: Option<AsOf>,
    /// The catalog the tables are registered in: DataFusion's `datafusion`, or the database name
    /// a served session shows its clients (`ebiq`).
    pub catalog: String,
}

impl SessionSettings {
    /// The settings for `data` with everything else at its default: built-in rules, the intended
    /// null mode, a partition per core, no memory limit, this process.
    pub fn over(data: impl Into<String>) -> Self {
        Self {
            data: data.into(),
            rules: RuleSource::BuiltIn,
            null_mode: NullMode::default(),
            target_partitions: 0,
            memory_limit: None,
            cluster: None,
            as_of: None,
            catalog: DEFAULT_CATALOG.to_owned(),
        }
    }
}

/// DataFusion's name for the catalog that holds a session's tables.
pub const DEFAULT_CATALOG: &str = "datafusion";

/// An open session over a dataset, with what it was opened from.
pub struct Session {
    /// Where queries run: this process, or a client of the cluster.
    pub ctx: SessionContext,
    /// The rules whose functions the session has.
    pub rules: Rules,
    /// The Parquet files the tables read.
    pub inputs: Vec<InputFile>,
    /// The Delta tables read, with their versions.
    pub delta: Vec<DeltaRead>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("ctx", &self.ctx.session_id())
            .field("rules", &self.rules)
            .field("inputs", &self.inputs)
            .field("delta", &self.delta)
            .finish()
    }
}

/// Loads the rules, builds the session (a cluster client if `settings.cluster` names one), then
/// locates, checks and registers the dataset's tables.
pub async fn open(settings: &SessionSettings) -> Result<Session> {
    let rules = settings.rules.load()?;
    let mut ctx = new_session(settings, &rules)?;
    if let Some(url) = &settings.cluster {
        ctx = cluster::connect(ctx, url, &rules).await?;
    }
    register_esp2013(&ctx).await?;
    let dataset = Dataset::locate(&ctx, &settings.data).await?;
    let registered = dataset.register(&ctx, settings.as_of).await?;
    if settings.cluster.is_some() && !registered.delta.is_empty() {
        bail!(
            "a Delta table is read in this process only: a Ballista cluster cannot plan a scan \
             of {} (run without --cluster)",
            dataset.opa
        );
    }
    Ok(Session {
        ctx,
        rules,
        inputs: registered.files,
        delta: registered.delta,
    })
}

/// Registers the 2013 European Standard Population as the view `esp2013` (`age_band`,
/// `band_order`, `population`). A view over VALUES, not an in-memory table, so that a Ballista
/// client sends its rows inside the plan rather than naming a table the scheduler lacks.
async fn register_esp2013(ctx: &SessionContext) -> Result<()> {
    let rows: Vec<String> = ebiq_udfs::ESP2013
        .iter()
        .zip(1..)
        .map(|((band, people), order)| format!("('{band}', {order}, {people})"))
        .collect();
    let sql = format!(
        "CREATE VIEW esp2013 AS SELECT column1 AS age_band, CAST(column2 AS INT) AS band_order, \
         CAST(column3 AS BIGINT) AS population FROM (VALUES {}) AS esp",
        rows.join(", ")
    );
    ctx.sql(&sql)
        .await
        .context("cannot register the esp2013 table")?;
    Ok(())
}

/// Bytes read from the end of a local Parquet file in the hope of finding its whole footer.
const LOCAL_FOOTER_HINT: usize = 64 * 1024;

/// A local session with the functions of `rules` registered and `ebiq.*` settings available, but
/// no tables.
pub fn new_session(settings: &SessionSettings, rules: &Rules) -> Result<SessionContext> {
    let options = EbiqOptions {
        null_mode: settings.null_mode,
    };
    let mut config = SessionConfig::new()
        .with_option_extension(options)
        .with_information_schema(true)
        .with_default_catalog_and_schema(&settings.catalog, "public");
    if settings.target_partitions > 0 {
        config = config.with_target_partitions(settings.target_partitions);
    }
    if matches!(Location::parse(&settings.data), Ok(Location::Local(_))) {
        // DataFusion reads a file's last 512 KiB to find its footer in one request, which suits
        // an object store. On local disk that copies most of a small monthly file, for the
        // footer checks and the planning both; a footer larger than 64 KiB costs a second read.
        config.options_mut().execution.parquet.metadata_size_hint = Some(LOCAL_FOOTER_HINT);
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
    register_rules(&mut ctx, rules.as_slice()).context("cannot register the rule functions")?;
    ctx.add_analyzer_rule(Arc::new(crate::plan::month_range::MonthRange));
    Ok(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn footer_hint(data: &str) -> Option<usize> {
        let settings = SessionSettings::over(data);
        let rules = settings.rules.load().expect("the built-in rules");
        let ctx = new_session(&settings, &rules).expect("a session");
        ctx.state()
            .config()
            .options()
            .execution
            .parquet
            .metadata_size_hint
    }

    #[test]
    fn local_files_read_a_small_footer_hint_and_stores_keep_one_request() {
        let stores_default = SessionConfig::new()
            .options()
            .execution
            .parquet
            .metadata_size_hint;
        assert_eq!(footer_hint("data-samples"), Some(LOCAL_FOOTER_HINT));
        assert_eq!(footer_hint("file:///data/sus"), Some(LOCAL_FOOTER_HINT));
        assert_eq!(footer_hint("s3://sus-bucket/sus/"), stores_default);
        assert_ne!(stores_default, Some(LOCAL_FOOTER_HINT));
    }
}
