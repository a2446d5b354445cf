//! The `ebiq` command: arguments in, one command run, results on stdout, errors on stderr.
//!
//! Exit codes: 0 success (also when the reader of stdout closes it early); 1 a query, data or I/O
//! error; 2 a usage error.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use ebiq::output::stdout_closed;
use ebiq::progress::Progress;

/// Planning and (de)serialising a plan recurse once per node: a report query with several CTEs
/// and joins overflows tokio's 2 MiB default on a Ballista scheduler.
const WORKER_STACK: usize = 16 * 1024 * 1024;

/// A query, data or I/O error.
const EXIT_FAILURE: u8 = 1;
/// Arguments that do not make sense together (clap itself exits 2 for the rest).
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    ebiq::allocator::tune();
    let cli = cli::Cli::parse();
    let progress = Progress::new(cli.quiet);
    let command = match cli.into_command() {
        Ok(command) => command,
        Err(message) => {
            eprintln!("ebiq: {message}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(WORKER_STACK)
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ebiq: cannot start the runtime: {error}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match runtime.block_on(ebiq::run(command, progress)) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our results has gone (`ebiq report | head`): a normal end, as for any
        // command-line tool in a pipe.
        Err(_) if stdout_closed() => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ebiq: error: {}", describe(&error));
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// The error and its causes, each once: DataFusion's errors repeat their sources in their text.
fn describe(error: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !message.contains(&text) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&text);
        }
    }
    message
}
