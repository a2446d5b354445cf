//! `ebiq shell`: an SQL shell over the same session as `report`, on `rustyline`, with ebiq's own
//! meta commands (`\rules`, `\why`, `\d`, `\timing`, `\pset format`) and printers.
//!
//! At a terminal: line editing, history in `~/.ebiq_history`, statements over several lines ended by
//! `;`. From a pipe: statements are read to the end of input and run in order. Either way Ctrl-C
//! cancels the running statement and the session goes on; an error is shown and the session goes
//! on; Ctrl-D (end of input) quits. Results go to stdout; timings, notes and errors to stderr.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use datafusion::arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::DFParser;
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Editor, Helper};
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::explain::{ExplainSettings, explain_sql};
use crate::output::{OutputFormat, ResultsOut, write_batches};
use crate::plan::CteReferences;
use crate::rules::Rules;
use crate::session::{self, SessionSettings};
use crate::sql::execute_statement;

const HELP: &str = "\
ebiq shell: SQL over the SUS tables (opa, apcs) with every EBI rule function.
  \\rules            list the EBI rule functions, tsql_like, sus_month, sus_age_* and the statistics
  \\rules NAME       show one function's documentation
  \\why CONDITION    why each rule flags the opa records CONDITION picks, or not
                    (\\why opa_ident = 1042; at most 20 records)
  \\timing           show or hide how long each statement took
  \\d                list tables        \\d NAME     describe a table
  \\pset format F    table, csv, tsv or json (one object per line)
  \\q                quit (or Ctrl-D)   Ctrl-C cancels the running statement
SET ebiq.null_mode = 'strict_tsql' (or 'intended') switches how NULL exclusion fields count.";

/// The formats the shell prints; Parquet and HTML are files, written by `ebiq sql` and `ebiq report`.
pub const SHELL_FORMATS: [OutputFormat; 4] = [
    OutputFormat::Table,
    OutputFormat::Csv,
    OutputFormat::Tsv,
    OutputFormat::Json,
];

/// Rows a table shows at most; the other formats print every row, for copying or piping.
const TABLE_ROWS_SHOWN: usize = 40;

/// How the shell starts, already validated.
#[derive(Debug, Clone)]
pub struct ShellSettings {
    /// How results are printed (`\pset format` changes it): one of [`SHELL_FORMATS`].
    pub format: OutputFormat,
    /// Where history is kept; `None` keeps none.
    pub history: Option<PathBuf>,
}

impl Default for ShellSettings {
    fn default() -> Self {
        Self {
            format: OutputFormat::Table,
            history: std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".ebiq_history")),
        }
    }
}

/// A format the shell can print, from its name (`--format`, `\pset format`).
pub fn shell_format(name: &str) -> Result<OutputFormat, String> {
    let format: OutputFormat = name.parse()?;
    if SHELL_FORMATS.contains(&format) {
        Ok(format)
    } else {
        Err(format!(
            "the shell prints table, csv, tsv or json; {format} is a file: ebiq sql --out"
        ))
    }
}

/// How results are shown (`\pset format` and `\timing` change it).
#[derive(Debug)]
struct Display {
    format: OutputFormat,
    timing: bool,
}

/// One shell: what statements run against and how, what Ctrl-C sends, and how results are shown.
struct Shell<'a> {
    ctx: &'a SessionContext,
    rules: &'a Rules,
    /// How a CTE referred to more than once runs (once, unless on a cluster).
    ctes: CteReferences,
    interrupts: Signal,
    display: Display,
}

/// What a meta command asks of the loop.
enum Next {
    Continue,
    Quit,
}

/// The whole command: opens the session over the dataset and runs the shell on it.
pub async fn run(session_settings: &SessionSettings, settings: &ShellSettings) -> Result<()> {
    let session = session::open(session_settings).await?;
    let ctes = CteReferences::for_session(session_settings.cluster.is_some());
    run_shell(&session.ctx, &session.rules, settings, ctes).await
}

/// Reads and runs statements until `\q` or the end of input.
pub async fn run_shell(
    ctx: &SessionContext,
    rules: &Rules,
    settings: &ShellSettings,
    ctes: CteReferences,
) -> Result<()> {
    // Installed before anything runs, so Ctrl-C never ends the shell, only a statement.
    let interrupts = signal(SignalKind::interrupt()).context("cannot watch for Ctrl-C")?;
    let at_terminal = std::io::stdin().is_terminal();
    let mut shell = Shell {
        ctx,
        rules,
        ctes,
        interrupts,
        display: Display {
            format: settings.format,
            timing: at_terminal,
        },
    };
    if at_terminal {
        shell.interactive(settings).await
    } else {
        shell.piped().await
    }
}

/// The line editor's helper: a statement goes on over several lines until one ends with `;`; a meta
/// command is one line. No completion, hints or colours.
struct StatementLines;

impl Validator for StatementLines {
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        let input = ctx.input().trim();
        let complete = input.is_empty() || input.starts_with('\\') || input.ends_with(';');
        Ok(if complete {
            ValidationResult::Valid(None)
        } else {
            ValidationResult::Incomplete
        })
    }
}

impl Completer for StatementLines {
    type Candidate = String;
}

impl Hinter for StatementLines {
    type Hint = String;
}

impl Highlighter for StatementLines {}

impl Helper for StatementLines {}

impl Shell<'_> {
    async fn interactive(&mut self, settings: &ShellSettings) -> Result<()> {
        let mut editor: Editor<StatementLines, DefaultHistory> = Editor::new()?;
        editor.set_helper(Some(StatementLines));
        if let Some(history) = &settings.history {
            let _ = editor.load_history(history);
        }
        eprintln!("ebiq shell: \\? for help, \\q to quit");
        loop {
            match editor.readline("ebiq> ") {
                Ok(line) => {
                    let _ = editor.add_history_entry(line.trim_end());
                    if let Next::Quit = self.run_line(&line).await {
                        break;
                    }
                }
                Err(ReadlineError::Interrupted) => continue,
                Err(ReadlineError::Eof) => break,
                Err(error) => return Err(error.into()),
            }
        }
        if let Some(history) = &settings.history {
            editor
                .save_history(history)
                .with_context(|| format!("cannot save history to {}", history.display()))?;
        }
        Ok(())
    }

    /// Reads statements from a pipe: meta commands on their own line, SQL up to a line ending in `;`.
    async fn piped(&mut self) -> Result<()> {
        let lines: Vec<String> = std::io::stdin()
            .lock()
            .lines()
            .collect::<std::io::Result<_>>()
            .context("cannot read standard input")?;
        let mut statement = String::new();
        for line in lines {
            if statement.trim().is_empty() && line.trim_start().starts_with('\\') {
                if let Next::Quit = self.run_line(&line).await {
                    return Ok(());
                }
                continue;
            }
            statement.push_str(&line);
            statement.push('\n');
            if line.trim_end().ends_with(';') {
                self.run_line(&statement).await;
                statement.clear();
            }
        }
        if !statement.trim().is_empty() {
            self.run_line(&statement).await;
        }
        Ok(())
    }

    async fn run_line(&mut self, line: &str) -> Next {
        let trimmed = line.trim();
        if let Some(meta) = trimmed.strip_prefix('\\') {
            return self.meta_command(meta).await;
        }
        if !trimmed.is_empty() {
            self.run_cancellable(line).await;
        }
        Next::Continue
    }

    /// Runs `sql` until it ends or Ctrl-C stops it; an error is shown and the session goes on.
    async fn run_cancellable(&mut self, sql: &str) {
        tokio::select! {
            result = run_statements(self.ctx, sql, self.ctes, &self.display) => {
                if let Err(error) = result {
                    eprintln!("error: {error:#}");
                }
            }
            _ = self.interrupts.recv() => eprintln!("^C: statement cancelled"),
        }
    }

    async fn meta_command(&mut self, meta: &str) -> Next {
        // `\why` alone, or followed by a condition; `\whyever` is not it.
        if let Some(condition) = meta
            .strip_prefix("why")
            .filter(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
        {
            self.why(condition.trim()).await;
            return Next::Continue;
        }
        let mut words = meta.split_whitespace();
        match (words.next().unwrap_or_default(), words.next()) {
            ("q" | "quit", _) => return Next::Quit,
            ("?" | "help", _) => println!("{HELP}"),
            ("rules", name) => println!("{}", function_docs(self.ctx, name)),
            ("timing", _) => {
                self.display.timing = !self.display.timing;
                println!(
                    "timing is {}",
                    if self.display.timing { "on" } else { "off" }
                );
            }
            ("pset", Some("format")) => match words.next().map(shell_format) {
                Some(Ok(format)) => {
                    self.display.format = format;
                    println!("output format is {format}");
                }
                Some(Err(error)) => eprintln!("error: {error}"),
                None => eprintln!("error: \\pset format takes table, csv, tsv or json"),
            },
            ("d", None) => {
                let sql = "SELECT table_name, table_type FROM information_schema.tables \
                       WHERE table_schema <> 'information_schema' ORDER BY table_name";
                self.run_cancellable(sql).await;
            }
            ("d", Some(table)) => match describe_sql(self.ctx, table) {
                Ok(sql) => self.run_cancellable(&sql).await,
                Err(error) => eprintln!("error: {error:#}"),
            },
            _ => eprintln!("unknown command '\\{meta}': \\? lists the commands"),
        }
        Next::Continue
    }

    /// `\why CONDITION`: each rule's explanation of the `opa` records `condition` picks.
    async fn why(&mut self, condition: &str) {
        if condition.is_empty() {
            eprintln!("error: \\why takes a condition picking opa records: \\why opa_ident = 1042");
            return;
        }
        let settings = ExplainSettings {
            table: "opa".into(),
            condition: condition.trim_end_matches(';').to_owned(),
            limit: WHY_LIMIT,
            format: OutputFormat::Table,
        };
        match explain_sql(self.ctx, self.rules, &settings).await {
            Ok(sql) => self.run_cancellable(&sql).await,
            Err(error) => eprintln!("error: {error:#}"),
        }
    }
}

/// Runs each statement in `sql` in order and shows its result; stops at the first error.
async fn run_statements(
    ctx: &SessionContext,
    sql: &str,
    ctes: CteReferences,
    display: &Display,
) -> Result<()> {
    for statement in DFParser::parse_sql(sql)? {
        let started = Instant::now();
        let (schema, batches) = execute_statement(ctx, statement, ctes).await?;
        if schema.fields().is_empty() {
            continue; // DDL or SET: nothing to show
        }
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let mut stdout = ResultsOut::stdout();
        if display.format == OutputFormat::Table && rows > TABLE_ROWS_SHOWN {
            let first = first_rows(&batches, TABLE_ROWS_SHOWN);
            write_batches(display.format, &schema, &first, &mut stdout)?;
            eprintln!(
                "({rows} rows, the first {TABLE_ROWS_SHOWN} shown; \\pset format csv prints all)"
            );
        } else {
            write_batches(display.format, &schema, &batches, &mut stdout)?;
        }
        if display.timing {
            eprintln!("{rows} rows in {:.3} s", started.elapsed().as_secs_f64());
        }
    }
    Ok(())
}

/// The first `limit` rows of `batches`, sliced without copying.
fn first_rows(batches: &[RecordBatch], limit: usize) -> Vec<RecordBatch> {
    let mut left = limit;
    let mut first = Vec::new();
    for batch in batches {
        if left == 0 {
            break;
        }
        let take = batch.num_rows().min(left);
        first.push(batch.slice(0, take));
        left -= take;
    }
    first
}

/// The query `\d TABLE` runs: the table's columns in order, once the table is known to exist.
fn describe_sql(ctx: &SessionContext, table: &str) -> Result<String> {
    if !ctx.table_exist(table)? {
        bail!("no table named {table}: \\d lists the tables");
    }
    let name = table.trim_matches('"').replace('\'', "''");
    Ok(format!(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns \
         WHERE table_name = '{name}' ORDER BY ordinal_position"
    ))
}

/// Records `\why` explains at most, per rule.
const WHY_LIMIT: usize = 20;

/// ebiq's functions (the rule functions, `tsql_like`, `sus_month`, the `sus_age_*` checks and the
/// statistics), or one of them in full.
fn function_docs(ctx: &SessionContext, name: Option<&str>) -> String {
    let state = ctx.state();
    let own: Vec<String> = ebiq_udfs::functions(&[]).map_or_else(
        |_| Vec::new(),
        |f| {
            f.scalar
                .iter()
                .map(|u| u.name().to_owned())
                .chain(f.aggregate.iter().map(|u| u.name().to_owned()))
                .chain(f.window.iter().map(|u| u.name().to_owned()))
                .collect()
        },
    );
    let documented = state
        .scalar_functions()
        .iter()
        .map(|(n, f)| (n, f.documentation()))
        .chain(
            state
                .aggregate_functions()
                .iter()
                .map(|(n, f)| (n, f.documentation())),
        )
        .chain(
            state
                .window_functions()
                .iter()
                .map(|(n, f)| (n, f.documentation())),
        );
    let mut functions: Vec<_> = documented
        .filter(|(n, _)| n.starts_with("ebi_") || own.contains(n))
        .filter(|(n, _)| name.is_none_or(|wanted| n.eq_ignore_ascii_case(wanted)))
        .collect();
    functions.sort_by(|a, b| a.0.cmp(b.0));
    if functions.is_empty() {
        return format!("no EBI function named {}", name.unwrap_or_default());
    }
    let mut out = String::new();
    for (_, docs) in functions {
        let Some(docs) = docs else {
            continue;
        };
        out.push_str(&docs.syntax_example);
        out.push('\n');
        if name.is_some() {
            out.push_str(&format!("\n{}\n", docs.description));
            for (argument, meaning) in docs.arguments.iter().flatten() {
                out.push_str(&format!("  {argument}: {meaning}\n"));
            }
            if let Some(example) = &docs.sql_example {
                out.push_str(&format!("\n{example}\n"));
            }
        }
    }
    out.trim_end().to_owned()
}
