//! ebiq: the NHS Evidence-Based Interventions rules over SUS activity in Parquet, on Apache
//! DataFusion. The binary's `main` parses arguments into the settings structs of these modules and
//! calls [`run`]; nothing here knows about the command line.
//!
//! Each command's work lives in its module (`report::run`, `sql::run`, `shell::run`, `serve::run`,
//! `generate::run`, `cluster::run_scheduler`, `cluster::run_executor`); the querying ones open their
//! session over a dataset with [`session::open`].

pub mod allocator;
pub mod cluster;
pub mod dataset;
pub mod explain;
pub mod generate;
pub mod months;
pub mod output;
pub mod plan;
pub mod progress;
pub mod report;
pub mod rules;
pub mod serve;
pub mod session;
pub mod shell;
pub mod sql;

use anyhow::Result;

use crate::cluster::{ExecutorSettings, SchedulerSettings};
use crate::explain::ExplainSettings;
use crate::generate::GenerateSettings;
use crate::progress::Progress;
use crate::report::ReportSettings;
use crate::serve::ServeSettings;
use crate::session::SessionSettings;
use crate::shell::ShellSettings;
use crate::sql::SqlSettings;

/// One command, validated and ready to run.
#[derive(Debug, Clone)]
pub enum Command {
    /// `ebiq report`: every report query over a dataset.
    Report {
        /// The session and its dataset.
        session: SessionSettings,
        /// The queries and their outputs.
        report: ReportSettings,
    },
    /// `ebiq generate`: a synthetic dataset.
    Generate(GenerateSettings),
    /// `ebiq scheduler`: a Ballista scheduler.
    Scheduler(SchedulerSettings),
    /// `ebiq executor`: a Ballista executor.
    Executor(ExecutorSettings),
    /// `ebiq shell`: an interactive SQL shell over a dataset.
    Shell {
        /// The session and its dataset.
        session: SessionSettings,
        /// The shell's own settings.
        shell: ShellSettings,
    },
    /// `ebiq explain`: why each rule flags the records a condition picks, or not.
    Explain {
        /// The session and its dataset.
        session: SessionSettings,
        /// The records and the output.
        explain: ExplainSettings,
    },
    /// `ebiq serve`: the PostgreSQL wire protocol over a dataset, for R, Python, BI tools and SQL
    /// clients.
    Serve {
        /// The session and its dataset.
        session: SessionSettings,
        /// Where to listen, and what to serve besides the tables.
        serve: ServeSettings,
    },
    /// `ebiq serve --add-user`: a login written to a users file.
    AddUser(serve::AddUserSettings),
    /// `ebiq sql`: statements over a dataset, for scripts.
    Sql {
        /// The session and its dataset.
        session: SessionSettings,
        /// The statements and their output.
        sql: SqlSettings,
    },
}

/// Runs `command`, writing results to stdout and everything else to stderr.
pub async fn run(command: Command, progress: Progress) -> Result<()> {
    match command {
        Command::Report { session, report } => report::run(&session, &report, &progress).await,
        Command::Sql { session, sql } => sql::run(&session, &sql).await,
        Command::Serve { session, serve } => serve::run(&session, &serve).await,
        Command::AddUser(settings) => serve::add_user(&settings),
        Command::Explain { session, explain } => explain::run(&session, &explain).await,
        Command::Shell { session, shell } => shell::run(&session, &shell).await,
        Command::Scheduler(settings) => cluster::run_scheduler(&settings).await,
        Command::Executor(settings) => cluster::run_executor(&settings).await,
        Command::Generate(settings) => generate::run(&settings, &progress),
    }
}
