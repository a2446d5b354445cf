//! The run manifest written beside a report's outputs (`manifest.json`): enough to reproduce and
//! audit the run. It names every input file with its size and modification time, every rule file
//! and query file with the SHA-256 of its text, the engine's version, the parameters, and the rows
//! each output holds. It is written last, so its presence means the run completed.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{ReportSettings, ReportSummary};
use crate::dataset::delta::DeltaRead;
use crate::dataset::validate::InputFile;
use crate::output::write_atomically;
use crate::rules::Rules;
use crate::session::SessionSettings;

/// The manifest's file name inside `--out`.
pub const MANIFEST: &str = "manifest.json";

/// Everything a report run is recorded by.
#[derive(Debug)]
pub(super) struct RunRecord<'a> {
    pub started: DateTime<Utc>,
    pub session: &'a SessionSettings,
    pub report: &'a ReportSettings,
    /// The rules as loaded for the run (not read again: the folder may have changed since).
    pub rules: &'a Rules,
    pub inputs: &'a [InputFile],
    /// The Delta tables read, with their versions.
    pub delta: &'a [DeltaRead],
    pub summary: &'a ReportSummary,
}

pub(super) fn sha256(text: &[u8]) -> String {
    Sha256::digest(text)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The manifest as JSON.
fn manifest(run: &RunRecord<'_>) -> Result<Value> {
    let mut queries = Vec::new();
    for ran in &run.summary.ran {
        let text = std::fs::read(&ran.query.path)
            .with_context(|| format!("cannot read {}", ran.query.path.display()))?;
        queries.push(json!({
            "name": ran.query.name,
            "file": ran.query.path.display().to_string(),
            "sha256": sha256(&text),
            "output": ran.output.as_ref().map(|p| p.display().to_string()),
            "rows": ran.rows,
            "ctes_run_once": ran.ctes_run_once.iter()
                .map(|(name, rows)| json!({"name": name, "rows": rows}))
                .collect::<Vec<_>>(),
            "from_shared_scan": ran.from_shared_scan.iter()
                .map(|(name, rows)| json!({"name": name, "rows": rows}))
                .collect::<Vec<_>>(),
        }));
    }
    Ok(json!({
        "engine": {
            "name": "ebiq",
            "version": env!("CARGO_PKG_VERSION"),
            "datafusion": datafusion::DATAFUSION_VERSION,
        },
        "command": std::env::args().collect::<Vec<_>>(),
        "started": timestamp(run.started),
        "elapsed_seconds": run.summary.elapsed.as_secs_f64(),
        "parameters": {
            "data": run.session.data,
            "queries": run.report.queries.display().to_string(),
            "from_month": run.report.from.map(|m| m.to_string()),
            "to_month": run.report.to.map(|m| m.to_string()),
            "null_mode": run.session.null_mode.to_string(),
            "format": run.report.format.to_string(),
            "suppressed": run.report.suppress,
            "partitions": run.session.target_partitions,
            "memory_limit_bytes": run.session.memory_limit,
            "as_of": run.session.as_of.map(|as_of| as_of.to_string()),
        },
        "inputs": run.inputs.iter().map(|file| json!({
            "table": file.table,
            "path": file.path,
            "bytes": file.bytes,
            "modified": timestamp(file.modified),
            // Whether a query read it: false when partition pruning skipped it; null on a cluster.
            "read": run.summary.files_read.as_ref().map(|read| read.contains(&file.path)),
        })).collect::<Vec<_>>(),
        // The version read, so that `--as-of VERSION` reproduces the run exactly.
        "delta_tables": run.delta.iter().map(|read| json!({
            "table": read.table,
            "location": read.location,
            "version": read.version,
        })).collect::<Vec<_>>(),
        "rules": run.rules.as_slice().iter().map(|rule| json!({
            "name": rule.name,
            "title": rule.title,
            "version": rule.version,
            "effective": rule.effective,
            "file": rule.file,
            "sha256": sha256(rule.source.as_bytes()),
        })).collect::<Vec<_>>(),
        "queries": queries,
        "rows_scanned": run.summary.rows_scanned,
        "rows_flagged": run.summary.rows_flagged,
        "data_quality": {
            "invalid_activity_month": run.summary.quality.invalid_month,
            "unknown_age": run.summary.quality.unknown_age,
            "impossible_age": run.summary.quality.impossible_age,
            // Which query's scan counted the above, or null when the summary had its own scan.
            "counted_by_query": run.summary.counted_by,
        },
    }))
}

/// Writes the manifest into `out`, atomically; returns its path.
pub(super) fn write_manifest(out: &Path, run: &RunRecord<'_>) -> Result<PathBuf> {
    let path = out.join(MANIFEST);
    let value = manifest(run)?;
    // Pretty JSON writes a few bytes at a time: one system call each without a buffer.
    let text = serde_json::to_vec_pretty(&value)?;
    write_atomically(&path, |file| {
        std::io::Write::write_all(file, &text)?;
        std::io::Write::write_all(file, b"\n")?;
        Ok(())
    })?;
    Ok(path)
}
