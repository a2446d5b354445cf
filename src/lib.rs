//! ebiq: the NHS Evidence-Based Interventions rules over SUS activity in Parquet, on Apache
//! DataFusion. The binary's `main` parses arguments into the settings structs of these modules and
//! calls [`run`]; nothing here knows about the command line.

pub mod cluster;
pub mod generate;
pub mod manifest;
pub mod months;
pub mod output;
pub mod progress;
pub mod report;
pub mod schema;
pub mod session;
pub mod shell;
pub mod sql;
pub mod storage;
pub mod suppress;
pub mod validate;

use std::io::Write;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::cluster::{ExecutorSettings, SchedulerSettings};
use crate::generate::GenerateSettings;
use crate::progress::Progress;
use crate::report::ReportSettings;
use crate::session::{Dataset, SessionSettings};
use crate::shell::ShellSettings;
use crate::sql::SqlSettings;

/// One command, validated and ready to run.
#[derive(Debug, Clone)]
pub enum Command {
    Report {
        session: SessionSettings,
        data: String,
        report: ReportSettings,
    },
    Generate(GenerateSettings),
    Scheduler(SchedulerSettings),
    Executor(ExecutorSettings),
    Shell {
        session: SessionSettings,
        data: String,
        shell: ShellSettings,
    },
    Sql {
        session: SessionSettings,
        data: String,
        sql: SqlSettings,
    },
}

/// Runs `command`, writing results to stdout and everything else to stderr.
pub async fn run(command: Command, progress: Progress) -> Result<()> {
    match command {
        Command::Report {
            session,
            data,
            report,
        } => {
            let started = chrono::Utc::now();
            let ctx = session::connect_session(&session).await?;
            let inputs =
                session::register_dataset(&ctx, &Dataset::locate(&ctx, &data).await?).await?;
            if let Some(out) = &report.out {
                // A manifest says its outputs are complete; an earlier run's must not vouch for
                // this one's if this one fails.
                let stale = out.join(manifest::MANIFEST);
                if stale.exists() {
                    std::fs::remove_file(&stale)
                        .with_context(|| format!("cannot remove {}", stale.display()))?;
                }
            }
            let mut stdout = std::io::BufWriter::new(std::io::stdout());
            let summary = report::run_report(&ctx, &report, &progress, &mut stdout).await?;
            stdout.flush()?;
            for path in &summary.outputs {
                eprintln!("wrote {}", path.display());
            }
            if let Some(out) = &report.out {
                let record = manifest::RunRecord {
                    started,
                    data: &data,
                    session: &session,
                    report: &report,
                    inputs: &inputs,
                    summary: &summary,
                };
                let path = manifest::write_manifest(out, &record)?;
                eprintln!("wrote {}", path.display());
            }
            let flagged = summary
                .rows_flagged
                .map_or_else(|| "unknown".to_owned(), |n| n.to_string());
            eprintln!(
                "{} queries over {} outpatient rows, {flagged} flagged, in {:.2}s",
                summary.queries,
                summary.rows_scanned,
                summary.elapsed.as_secs_f64()
            );
            let quality = summary.quality;
            if quality != report::DataQuality::default() {
                eprintln!(
                    "data: {} outpatient records with an invalid activity month (never counted), \
                     {} with age unknown (999) and {} with an impossible age (never flagged)",
                    quality.invalid_month, quality.unknown_age, quality.impossible_age
                );
            }
        }
        Command::Sql { session, data, sql } => {
            let ctx = session::connect_session(&session).await?;
            session::register_dataset(&ctx, &Dataset::locate(&ctx, &data).await?).await?;
            let mut stdout = std::io::BufWriter::new(std::io::stdout());
            sql::run_sql(&ctx, &sql, &mut stdout).await?;
            stdout.flush()?;
        }
        Command::Shell {
            session,
            data,
            shell,
        } => {
            let ctx = session::connect_session(&session).await?;
            session::register_dataset(&ctx, &Dataset::locate(&ctx, &data).await?).await?;
            shell::run_shell(&ctx, &shell).await?;
        }
        Command::Scheduler(settings) => cluster::run_scheduler(&settings).await?,
        Command::Executor(settings) => cluster::run_executor(&settings).await?,
        Command::Generate(settings) => {
            let started = Instant::now();
            let summary = generate::generate(&settings, &progress)?;
            let seconds = started.elapsed().as_secs_f64();
            eprintln!(
                "wrote {} rows in {} files ({:.1} MB) to {} in {seconds:.1}s ({:.0} rows/s)",
                summary.rows,
                summary.files,
                summary.bytes as f64 / 1e6,
                settings.out.display(),
                summary.rows as f64 / seconds.max(1e-9)
            );
        }
    }
    Ok(())
}
