//! Running the same queries on an Apache DataFusion Ballista cluster: `ebiq scheduler`,
//! `ebiq executor`, and `--cluster df://HOST:PORT` for the commands that query.
//!
//! Ballista ships logical plans from the client to the scheduler and physical plans from the
//! scheduler to executors, naming functions by name; so the scheduler's sessions and every
//! executor's function registry hold the same rule functions as the client, and their session
//! configuration carries the `ebiq.*` settings (`ebiq.null_mode`) the client sets.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use ballista::prelude::{SessionConfigExt, SessionContextExt};
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::utils::default_session_builder;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use datafusion::prelude::{SessionConfig, SessionContext};
use ebiq_udfs::{EbiqOptions, functions, register_rules};

use crate::rules::{RuleSource, Rules};

/// How to start a scheduler, already validated.
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    /// Address to listen on.
    pub bind: SocketAddr,
    /// Where the rule files come from (the same on every process).
    pub rules: RuleSource,
}

/// How to start an executor, already validated.
#[derive(Debug, Clone)]
pub struct ExecutorSettings {
    /// The scheduler to register with.
    pub scheduler_host: String,
    /// The scheduler's port.
    pub scheduler_port: u16,
    /// Host to listen on.
    pub bind_host: String,
    /// Arrow Flight port, for shuffle data.
    pub port: u16,
    /// gRPC port, for tasks from the scheduler.
    pub grpc_port: u16,
    /// Tasks at once; 0 means one per core.
    pub cores: usize,
    /// Where shuffle files go; `None`: a temporary folder.
    pub work_dir: Option<PathBuf>,
    /// Where the rule files come from (the same on every process).
    pub rules: RuleSource,
}

/// Ballista's session configuration with ebiq's settings in it.
fn cluster_config() -> SessionConfig {
    SessionConfig::new_with_ballista().with_option_extension(EbiqOptions::default())
}

/// Runs a Ballista scheduler until the process is stopped.
pub async fn run_scheduler(settings: &SchedulerSettings) -> Result<()> {
    let rules = settings.rules.load()?;
    let config = SchedulerConfig {
        bind_host: settings.bind.ip().to_string(),
        bind_port: settings.bind.port(),
        override_config_producer: Some(Arc::new(cluster_config)),
        override_session_builder: Some(Arc::new(move |config| {
            let mut state = default_session_builder(config)?;
            register_rules(&mut state, rules.as_slice())?;
            Ok(state)
        })),
        ..SchedulerConfig::default()
    };
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    eprintln!("ebiq scheduler listening on df://{}", settings.bind);
    start_server(cluster, settings.bind, Arc::new(config))
        .await
        .map_err(|e| anyhow!("the scheduler stopped: {e}"))
}

/// Runs a Ballista executor, registered with its scheduler, until the process is stopped.
pub async fn run_executor(settings: &ExecutorSettings) -> Result<()> {
    let mut registry = BallistaFunctionRegistry::default();
    // `functions` has refused duplicate names, so nothing here replaces anything of ours.
    let functions = functions(settings.rules.load()?.as_slice())?;
    for function in functions.scalar {
        registry
            .scalar_functions
            .insert(function.name().to_owned(), function);
    }
    for function in functions.aggregate {
        registry
            .aggregate_functions
            .insert(function.name().to_owned(), function);
    }
    for function in functions.window {
        registry
            .window_functions
            .insert(function.name().to_owned(), function);
    }
    let config = ExecutorProcessConfig {
        bind_host: settings.bind_host.clone(),
        port: settings.port,
        grpc_port: settings.grpc_port,
        scheduler_host: settings.scheduler_host.clone(),
        scheduler_port: settings.scheduler_port,
        vcores: settings.cores,
        work_dir: settings
            .work_dir
            .as_ref()
            .map(|dir| dir.display().to_string()),
        override_function_registry: Some(Arc::new(registry)),
        override_config_producer: Some(Arc::new(cluster_config)),
        ..ExecutorProcessConfig::default()
    };
    eprintln!(
        "ebiq executor on {}:{} for the scheduler at df://{}:{}",
        settings.bind_host, settings.port, settings.scheduler_host, settings.scheduler_port
    );
    start_executor_process(Arc::new(config))
        .await
        .map_err(|e| anyhow!("the executor stopped: {e}"))
}

/// `ctx`, with its settings, turned into a client of the cluster at `url` that has the functions
/// of `rules`.
pub async fn connect(ctx: SessionContext, url: &str, rules: &Rules) -> Result<SessionContext> {
    let mut ctx = SessionContext::remote_with_state(url, ctx.state())
        .await
        .with_context(|| format!("cannot connect to the Ballista scheduler at {url}"))?;
    // Ballista's client state starts again from its own function list: register ours on it.
    register_rules(&mut ctx, rules.as_slice()).context("cannot register the rule functions")?;
    Ok(ctx)
}
