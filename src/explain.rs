//! `ebiq explain` and the shell's `\why`: for the records a WHERE clause picks, each rule's
//! `ebi_<rule>_explain` laid out as columns a person (or a spreadsheet) can read.

use std::io::Write;

use anyhow::{Context, Result, bail};
use datafusion::prelude::SessionContext;

use crate::dataset::missing_column;
use crate::output::{OutputFormat, ResultsOut, write_batches};
use crate::rules::Rules;
use crate::session::{self, SessionSettings};

/// Which records to explain, already validated.
#[derive(Debug, Clone)]
pub struct ExplainSettings {
    /// The table the records are in (`opa`, `apcs`).
    pub table: String,
    /// An SQL condition over the table's columns: `opa_ident = 1042`.
    pub condition: String,
    /// At most this many records.
    pub limit: usize,
    /// How results are written.
    pub format: OutputFormat,
}

/// The whole command: opens the session and prints the explanation.
pub async fn run(session_settings: &SessionSettings, settings: &ExplainSettings) -> Result<()> {
    let session = session::open(session_settings).await?;
    let sql = explain_sql(&session.ctx, &session.rules, settings).await?;
    let frame = session
        .ctx
        .sql(&sql)
        .await
        .with_context(|| format!("cannot explain the records where {}", settings.condition))
        .map_err(|error| missing_column(&error, &session.inputs).unwrap_or(error))?;
    let schema = frame.schema().inner().clone();
    let batches = frame
        .collect()
        .await
        .with_context(|| format!("cannot explain the records where {}", settings.condition))?;
    if batches.iter().all(|b| b.num_rows() == 0) {
        eprintln!(
            "no {} record has {} (nothing to explain)",
            settings.table, settings.condition
        );
    }
    let mut stdout = ResultsOut::stdout();
    write_batches(settings.format, &schema, &batches, &mut stdout)?;
    stdout.flush()?;
    Ok(())
}

/// The SQL that explains every rule for the records of `settings`: one row per record and rule,
/// ordered by the table's identifier (`opa_ident`) when it has one.
pub async fn explain_sql(
    ctx: &SessionContext,
    rules: &Rules,
    settings: &ExplainSettings,
) -> Result<String> {
    let table = settings.table.to_lowercase();
    if !ctx.table_exist(table.as_str())? {
        bail!("the dataset has no {table} table to explain records of");
    }
    let schema = ctx.table(table.as_str()).await?.schema().clone();
    let ident = format!("{table}_ident");
    let (key, order) = if schema.has_column_with_unqualified_name(&ident) {
        (format!("{ident}, "), format!("ORDER BY {ident} "))
    } else {
        (String::new(), String::new())
    };
    let mut selects = Vec::new();
    for rule in rules.as_slice() {
        let arguments: Vec<String> = rule
            .flag_arguments()
            .iter()
            .map(|c| c.to_lowercase())
            .collect();
        let name = &rule.name;
        selects.push(format!(
            "SELECT {key}'{name}' AS rule, why['outcome'] AS outcome, why['flag'] AS flag, \
                    array_to_string(why['inclusion_matched'], '; ') AS inclusion_matched, \
                    why['age'] AS age, why['age_from'] AS age_from, \
                    array_to_string(why['exclusions_fired'], '; ') AS exclusions_fired, \
                    array_to_string(why['exclusions_unknown'], '; ') AS exclusions_unknown, \
                    why['null_mode'] AS null_mode \
             FROM (SELECT {key}ebi_{name}_explain({}) AS why FROM {table} WHERE ({}) \
                   {order}LIMIT {}) AS picked",
            arguments.join(", "),
            settings.condition,
            settings.limit
        ));
    }
    if selects.is_empty() {
        bail!("there are no rules to explain");
    }
    let order = if key.is_empty() { "rule" } else { "1, 2" };
    Ok(format!(
        "SELECT * FROM ({}) AS explained ORDER BY {order}",
        selects.join(" UNION ALL ")
    ))
}
