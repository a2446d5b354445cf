//! `ebiq shell`: an SQL shell over the same session as `report`, built from `datafusion-cli`'s
//! editor helper, meta commands and printers, with ebiq's own `\rules` and `\timing`.
//!
//! At a terminal: line editing, history in `~/.ebiq_history`, statements over several lines ended by
//! `;`. From a pipe: statements are read to the end of input and run in order. Either way Ctrl-C
//! cancels the running statement and the session goes on; an error is shown and the session goes
//! on; Ctrl-D (end of input) quits.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use datafusion::prelude::SessionContext;
use datafusion_cli::command::Command;
use datafusion_cli::exec::exec_from_commands;
use datafusion_cli::helper::CliHelper;
use datafusion_cli::object_storage::instrumented::InstrumentedObjectStoreRegistry;
use datafusion_cli::print_format::PrintFormat;
use datafusion_cli::print_options::{MaxRows, PrintOptions};
use rustyline::Editor;
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::explain::{ExplainSettings, explain_sql};
use crate::output::OutputFormat;
use crate::rules::Rules;
use crate::session::{self, SessionSettings};

const HELP: &str = "\
ebiq shell: SQL over the SUS tables (opa, apcs) with every EBI rule function.
  \\rules            list the EBI rule functions, tsql_like, sus_month, sus_age_* and the statistics
  \\rules NAME       show one function's documentation
  \\why CONDITION    why each rule flags the opa records CONDITION picks, or not
                    (\\why opa_ident = 1042; at most 20 records)
  \\timing           show or hide how long each statement took
  \\d                list tables        \\d NAME     describe a table
  \\pset format F    table, csv, tsv, json, ndjson or automatic
  \\q                quit (or Ctrl-D)   Ctrl-C cancels the running statement
SET ebiq.null_mode = 'strict_tsql' (or 'intended') switches how NULL exclusion fields count.";

/// How the shell starts, already validated.
#[derive(Debug, Clone)]
pub struct ShellSettings {
    /// How results are printed (`\pset format` changes it).
    pub format: PrintFormat,
    /// Where history is kept; `None` keeps none.
    pub history: Option<PathBuf>,
}

impl Default for ShellSettings {
    fn default() -> Self {
        Self {
            format: PrintFormat::Automatic,
            history: std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".ebiq_history")),
        }
    }
}

/// What a meta command asks of the loop.
enum Next {
    Continue,
    Quit,
}

/// The whole command: opens the session over the dataset and runs the shell on it.
pub async fn run(session_settings: &SessionSettings, settings: &ShellSettings) -> Result<()> {
    let session = session::open(session_settings).await?;
    run_shell(&session.ctx, &session.rules, settings).await
}

/// Reads and runs statements until `\q` or the end of input.
pub async fn run_shell(
    ctx: &SessionContext,
    rules: &Rules,
    settings: &ShellSettings,
) -> Result<()> {
    // Installed before anything runs, so Ctrl-C never ends the shell, only a statement.
    let mut interrupts = signal(SignalKind::interrupt()).context("cannot watch for Ctrl-C")?;
    let mut print = PrintOptions {
        format: settings.format,
        quiet: false,
        maxrows: MaxRows::Limited(40),
        color: std::io::stdout().is_terminal(),
        instrumented_registry: Arc::new(InstrumentedObjectStoreRegistry::new()),
    };
    if std::io::stdin().is_terminal() {
        interactive(ctx, rules, settings, &mut print, &mut interrupts).await
    } else {
        print.quiet = true;
        piped(ctx, rules, &mut print, &mut interrupts).await
    }
}

async fn interactive(
    ctx: &SessionContext,
    rules: &Rules,
    settings: &ShellSettings,
    print: &mut PrintOptions,
    interrupts: &mut Signal,
) -> Result<()> {
    let mut editor: Editor<CliHelper, DefaultHistory> = Editor::new()?;
    let dialect = ctx.state().config().options().sql_parser.dialect;
    editor.set_helper(Some(CliHelper::new(&dialect, print.color)));
    if let Some(history) = &settings.history {
        let _ = editor.load_history(history);
    }
    eprintln!("ebiq shell: \\? for help, \\q to quit");
    loop {
        match editor.readline("ebiq> ") {
            Ok(line) => {
                let _ = editor.add_history_entry(line.trim_end());
                if let Next::Quit = run_line(ctx, rules, &line, print, interrupts).await {
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
async fn piped(
    ctx: &SessionContext,
    rules: &Rules,
    print: &mut PrintOptions,
    interrupts: &mut Signal,
) -> Result<()> {
    let lines: Vec<String> = std::io::stdin()
        .lock()
        .lines()
        .collect::<std::io::Result<_>>()
        .context("cannot read standard input")?;
    let mut statement = String::new();
    for line in lines {
        if statement.trim().is_empty() && line.trim_start().starts_with('\\') {
            if let Next::Quit = run_line(ctx, rules, &line, print, interrupts).await {
                return Ok(());
            }
            continue;
        }
        statement.push_str(&line);
        statement.push('\n');
        if line.trim_end().ends_with(';') {
            run_line(ctx, rules, &statement, print, interrupts).await;
            statement.clear();
        }
    }
    if !statement.trim().is_empty() {
        run_line(ctx, rules, &statement, print, interrupts).await;
    }
    Ok(())
}

async fn run_line(
    ctx: &SessionContext,
    rules: &Rules,
    line: &str,
    print: &mut PrintOptions,
    interrupts: &mut Signal,
) -> Next {
    let trimmed = line.trim();
    if let Some(meta) = trimmed.strip_prefix('\\') {
        return meta_command(ctx, rules, meta, print).await;
    }
    if trimmed.is_empty() {
        return Next::Continue;
    }
    tokio::select! {
        result = exec_from_commands(ctx, vec![line.to_owned()], print) => {
            if let Err(error) = result {
                eprintln!("error: {error}");
            }
        }
        _ = interrupts.recv() => eprintln!("^C: statement cancelled"),
    }
    Next::Continue
}

async fn meta_command(
    ctx: &SessionContext,
    rules: &Rules,
    meta: &str,
    print: &mut PrintOptions,
) -> Next {
    // `\why` alone, or followed by a condition; `\whyever` is not it.
    if let Some(condition) = meta
        .strip_prefix("why")
        .filter(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
    {
        why(ctx, rules, condition.trim(), print).await;
        return Next::Continue;
    }
    let mut words = meta.split_whitespace();
    match (words.next().unwrap_or_default(), words.next()) {
        ("q" | "quit", _) => return Next::Quit,
        ("?" | "help", _) => println!("{HELP}"),
        ("rules", name) => println!("{}", function_docs(ctx, name)),
        ("timing", _) => {
            print.quiet = !print.quiet;
            println!("timing is {}", if print.quiet { "off" } else { "on" });
        }
        ("pset", Some("format")) => match words.next().map(str::parse::<PrintFormat>) {
            Some(Ok(format)) => {
                print.format = format;
                println!("output format is {format:?}");
            }
            _ => eprintln!("error: \\pset format takes table, csv, tsv, json, ndjson or automatic"),
        },
        _ => match meta.parse::<Command>() {
            Ok(command) => {
                if let Err(error) = command.execute(ctx, print).await {
                    eprintln!("error: {error}");
                }
            }
            Err(()) => eprintln!("unknown command '\\{meta}': \\? lists the commands"),
        },
    }
    Next::Continue
}

/// `\why CONDITION`: each rule's explanation of the `opa` records `condition` picks.
async fn why(ctx: &SessionContext, rules: &Rules, condition: &str, print: &mut PrintOptions) {
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
    let result = match explain_sql(ctx, rules, &settings).await {
        Ok(sql) => exec_from_commands(ctx, vec![sql], print)
            .await
            .map_err(Into::into),
        Err(error) => Err(error),
    };
    if let Err(error) = result {
        eprintln!("error: {error:#}");
    }
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
