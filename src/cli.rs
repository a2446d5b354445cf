//! Command-line arguments, parsed once into the library's validated settings.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use ebiq::Command;
use ebiq::cluster::{ExecutorSettings, SchedulerSettings};
use ebiq::dataset::delta::AsOf;
use ebiq::explain::ExplainSettings;
use ebiq::generate::{GenerateSettings, Layout};
use ebiq::months::{Month, MonthRange};
use ebiq::output::OutputFormat;
use ebiq::report::ReportSettings;
use ebiq::rules::RuleSource;
use ebiq::serve::{AddUserSettings, Limits, ServeSettings, TlsFiles};
use ebiq::session::{DEFAULT_CATALOG, SessionSettings};
use ebiq::shell::ShellSettings;
use ebiq::sql::{SqlSettings, SqlSource};
use ebiq_udfs::{NULL_MODE_HELP, NullMode};

/// EBI rules over SUS activity in Parquet.
///
/// Exit codes: 0 success; 1 a query, data or I/O error; 2 a usage error.
#[derive(Debug, Parser)]
#[command(name = "ebiq", version, about, long_about = None)]
pub struct Cli {
    /// Show no progress bars
    #[arg(long, short, global = true)]
    pub quiet: bool,

    #[command(subcommand)]
    command: Commands,
}

#[derive(Debug, Subcommand)]
enum Commands {
    /// Run every report query over a SUS dataset (with no arguments: the checked-in sample)
    Report(ReportArgs),
    /// Write a synthetic SUS dataset as Parquet, one file per table and month
    Generate(GenerateArgs),
    /// Run SQL (a statement, or a file of them) over a SUS dataset and print the results
    Sql(SqlArgs),
    /// Why each EBI rule flags, or does not flag, the records a condition picks
    Explain(ExplainArgs),
    /// An interactive SQL shell over a SUS dataset (statements are read from stdin when piped)
    Shell(ShellArgs),
    /// Serve a SUS dataset over the PostgreSQL wire protocol, for R, Python, Power BI, Excel and SQL clients
    Serve(ServeArgs),
    /// Start a Ballista scheduler that knows the EBI rule functions
    Scheduler(SchedulerArgs),
    /// Start a Ballista executor that can run the EBI rule functions
    Executor(ExecutorArgs),
}

#[derive(Debug, Args)]
struct SchedulerArgs {
    /// Address to listen on
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50050")]
    bind: std::net::SocketAddr,

    /// A folder of rule files to use instead of the built-in rules (the same on every process)
    #[arg(long, value_name = "DIR")]
    rules: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ExecutorArgs {
    /// The scheduler to register with
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50050")]
    scheduler: String,

    /// Host to listen on
    #[arg(long, value_name = "HOST", default_value = "127.0.0.1")]
    bind: String,

    /// Arrow Flight port (shuffle data)
    #[arg(long, value_name = "PORT", default_value_t = 50051)]
    port: u16,

    /// gRPC port (tasks)
    #[arg(long, value_name = "PORT", default_value_t = 50052)]
    grpc_port: u16,

    /// Tasks at once (default: one per core)
    #[arg(long, value_name = "N", default_value_t = 0)]
    cores: usize,

    /// Folder for shuffle files (default: a temporary folder)
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,

    /// A folder of rule files to use instead of the built-in rules (the same on every process)
    #[arg(long, value_name = "DIR")]
    rules: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ShellArgs {
    #[command(flatten)]
    session: SessionArgs,

    /// table, csv, tsv or json (one object per line)
    #[arg(long, value_name = "FORMAT", default_value = "table", value_parser = ebiq::shell::shell_format)]
    format: OutputFormat,

    /// Keep no history file (by default ~/.ebiq_history)
    #[arg(long)]
    no_history: bool,
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    session: SessionArgs,

    /// Address to listen on (loopback unless --users and TLS are given; port 0 picks a free port)
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:5433")]
    listen: std::net::SocketAddr,

    /// The folder of report queries, served as the views reports.<name>
    #[arg(long, value_name = "DIR")]
    queries: Option<PathBuf>,

    /// The users file: NAME ROLE SCRAM-SHA-256-VERIFIER per line (see --add-user)
    #[arg(long, value_name = "FILE")]
    users: Option<PathBuf>,

    /// The server's TLS certificate chain (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// Record every statement (who, when, SQL, rows, outcome; never values) as JSON lines
    #[arg(long, value_name = "FILE")]
    audit: Option<PathBuf>,

    /// Connections open at once; one more is refused (SQLSTATE 53300)
    #[arg(long, value_name = "N", default_value_t = 64)]
    max_connections: usize,

    /// Stop a statement that runs longer (SQLSTATE 57014): 30s, 5min, 1h; none by default
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    statement_timeout: Option<std::time::Duration>,

    /// Close a connection with no statement running for this long: 30min, 8h; none by default
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    idle_timeout: Option<std::time::Duration>,

    /// Add or replace a login in --users (the password is asked twice) instead of serving
    #[arg(long, value_name = "NAME", requires_all = ["users", "role"])]
    add_user: Option<String>,

    /// The new login's role: analyst (any read-only SQL) or publisher (only reports.*, suppressed)
    #[arg(long, value_name = "ROLE", requires = "add_user")]
    role: Option<String>,
}

#[derive(Debug, Args)]
struct ExplainArgs {
    #[command(flatten)]
    session: SessionArgs,

    /// An SQL condition picking the records: "opa_ident = 1042"
    #[arg(long = "where", value_name = "CONDITION")]
    condition: String,

    /// The table the records are in
    #[arg(long, value_name = "TABLE", default_value = "opa")]
    table: String,

    /// At most this many records per rule
    #[arg(long, value_name = "N", default_value_t = 20)]
    limit: usize,

    /// table, csv or json (one object per line)
    #[arg(long, value_name = "FORMAT", default_value = "table")]
    format: OutputFormat,
}

#[derive(Debug, Args)]
struct SqlArgs {
    #[command(flatten)]
    session: SessionArgs,

    /// The SQL to run (or use -f)
    // Hyphens allowed: SQL pasted from a query file often begins with a `--` comment.
    #[arg(
        value_name = "SQL",
        required_unless_present = "file",
        conflicts_with = "file",
        allow_hyphen_values = true
    )]
    sql: Option<String>,

    /// A file of SQL statements, separated by ';'
    #[arg(long, short, value_name = "FILE")]
    file: Option<PathBuf>,

    /// table, csv, json (one object per line) or parquet [default: from --out's extension, else table]
    #[arg(long, value_name = "FORMAT")]
    format: Option<OutputFormat>,

    /// Write the last result to this file (atomically) instead of printing
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct SessionArgs {
    /// A dataset folder holding opa/ (and apcs/), or a Parquet file, folder or glob for opa; a
    /// file://, s3:// or az:// (abfss://) URL reads from that store, configured from the
    /// environment (AWS_*, AZURE_STORAGE_*)
    #[arg(long, value_name = "PATH")]
    data: Option<String>,

    /// A folder of rule files to use instead of the built-in rules
    #[arg(long, value_name = "DIR")]
    rules: Option<PathBuf>,

    #[arg(long, value_name = "MODE", default_value = "intended", help = NULL_MODE_HELP)]
    null_mode: NullMode,

    /// Partitions per query (default: one per core)
    #[arg(long, value_name = "N", default_value_t = 0)]
    partitions: usize,

    /// Memory the queries may use, such as 512M or 4G; past it they spill to TMPDIR
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    memory_limit: Option<usize>,

    /// Run the queries on a Ballista cluster: its scheduler's df://HOST:PORT
    #[arg(long, value_name = "URL")]
    cluster: Option<String>,

    /// Read the dataset's Delta tables as they were: a version (12) or a time (2026-04-01T00:00:00Z)
    #[arg(long, value_name = "VERSION|TIME")]
    as_of: Option<AsOf>,
}

/// `4G`, `512M`, `64k`, `1.5GiB` or a number of bytes, in powers of 1024.
fn parse_size(text: &str) -> Result<usize, String> {
    let lower = text.trim().to_ascii_lowercase();
    let number_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(number_end);
    let scale: f64 = match unit.trim().trim_end_matches("ib").trim_end_matches('b') {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(format!("'{text}' is not a size such as 512M or 4G")),
    };
    let number: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a size such as 512M or 4G"))?;
    let bytes = number * scale;
    if !(1.0..=usize::MAX as f64).contains(&bytes) {
        return Err(format!("'{text}' is not a usable memory size"));
    }
    Ok(bytes as usize)
}

/// `30s`, `5min`, `1h 30min` (humantime's forms), more than zero.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(text) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        Ok(_) => Err(format!(
            "'{text}' is no time at all: leave the option out for no limit"
        )),
        Err(error) => Err(format!(
            "'{text}' is not a duration such as 30s or 5min: {error}"
        )),
    }
}

#[derive(Debug, Args)]
struct ReportArgs {
    #[command(flatten)]
    session: SessionArgs,

    /// The folder of report queries
    #[arg(long, value_name = "DIR")]
    queries: Option<PathBuf>,

    /// Write one file per query into this folder instead of printing
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// table, csv, json (one object per line), parquet, or html (one page with charts) [default: table to the terminal, csv to --out]
    #[arg(long, value_name = "FORMAT")]
    format: Option<OutputFormat>,

    /// First activity month, YYYY-MM or YYYYMM
    #[arg(long, value_name = "MONTH")]
    from: Option<Month>,

    /// Last activity month, YYYY-MM or YYYYMM
    #[arg(long, value_name = "MONTH")]
    to: Option<Month>,

    /// For publication: counts 1-7 become *, others are rounded to 5, with secondary suppression
    #[arg(long)]
    suppress: bool,
}

#[derive(Debug, Args)]
struct GenerateArgs {
    /// Outpatient (opa) rows to write
    #[arg(long, value_name = "N")]
    rows: u64,

    /// Admitted spells (apcs) rows to write [default: a fifth of --rows]
    #[arg(long, value_name = "N")]
    apcs_rows: Option<u64>,

    /// The dataset folder to write opa/ and apcs/ into
    #[arg(long, value_name = "DIR")]
    out: PathBuf,

    /// Seed: the same seed gives the same data
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Activity months, FROM..TO
    #[arg(long, value_name = "RANGE", default_value = "2023-04..2025-03")]
    months: MonthRange,

    /// Replace opa/ and apcs/ if they already exist
    #[arg(long)]
    force: bool,

    /// Writer threads (default: one per core)
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,

    /// Files as extracts come: by-month (a file per month), by-provider or shuffled (as many
    /// files, each mixing every month: ordered by provider, or in random order)
    #[arg(long, value_name = "LAYOUT", default_value = "by-month")]
    layout: Layout,
}

/// A folder of the checked-out project: `name` under the current folder, else beside the sources
/// this binary was built from (so `cargo run -- report` works from anywhere in the clone).
fn project_path(name: &str) -> PathBuf {
    let here = PathBuf::from(name);
    if here.exists() {
        return here;
    }
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    if built_from.exists() {
        built_from
    } else {
        here
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

impl Cli {
    /// Checks what clap cannot, and builds the settings: one conversion per subcommand.
    pub fn into_command(self) -> Result<Command, String> {
        match self.command {
            Commands::Report(args) => args.into_command(),
            Commands::Sql(args) => args.into_command(),
            Commands::Explain(args) => args.into_command(),
            Commands::Shell(args) => args.into_command(),
            Commands::Serve(args) => args.into_command(),
            Commands::Scheduler(args) => args.into_command(),
            Commands::Executor(args) => args.into_command(),
            Commands::Generate(args) => args.into_command(),
        }
    }
}

impl ReportArgs {
    /// `ebiq report`: the months in order and a format that needs no file without `--out`.
    fn into_command(self) -> Result<Command, String> {
        if let (Some(from), Some(to)) = (self.from, self.to)
            && from > to
        {
            return Err(format!("--from {from} is after --to {to}"));
        }
        let format = self.format.unwrap_or(if self.out.is_some() {
            OutputFormat::Csv
        } else {
            OutputFormat::Table
        });
        if format == OutputFormat::Parquet && self.out.is_none() {
            return Err("--format parquet needs --out DIR".into());
        }
        Ok(Command::Report {
            session: session_settings(self.session),
            report: ReportSettings {
                queries: self.queries.unwrap_or_else(|| project_path("queries")),
                out: self.out,
                format,
                from: self.from,
                to: self.to,
                suppress: self.suppress,
            },
        })
    }
}

impl SqlArgs {
    /// `ebiq sql`: the format from `--format` or the output's name, and the SQL's source.
    fn into_command(self) -> Result<Command, String> {
        let format = match (self.format, &self.out) {
            (Some(format), _) => format,
            (None, Some(out)) => out
                .extension()
                .and_then(|e| e.to_str())
                .and_then(|e| e.parse().ok())
                .ok_or_else(|| {
                    format!(
                        "cannot tell the format of {} from its name: pass --format",
                        out.display()
                    )
                })?,
            (None, None) => OutputFormat::Table,
        };
        if format == OutputFormat::Html {
            return Err("--format html is one page for a whole report: use ebiq report".into());
        }
        if format == OutputFormat::Parquet && self.out.is_none() {
            return Err("--format parquet needs --out FILE".into());
        }
        let source = match (self.sql, self.file) {
            (Some(text), _) => SqlSource::Text(text),
            (None, Some(file)) => SqlSource::File(file),
            (None, None) => return Err("give the SQL to run, or -f FILE".into()),
        };
        Ok(Command::Sql {
            session: session_settings(self.session),
            sql: SqlSettings {
                source,
                format,
                out: self.out,
            },
        })
    }
}

impl ExplainArgs {
    /// `ebiq explain`: a format it can print.
    fn into_command(self) -> Result<Command, String> {
        if matches!(self.format, OutputFormat::Html | OutputFormat::Parquet) {
            return Err("ebiq explain writes table, csv, tsv or json".into());
        }
        Ok(Command::Explain {
            session: session_settings(self.session),
            explain: ExplainSettings {
                table: self.table,
                condition: self.condition,
                limit: self.limit,
                format: self.format,
            },
        })
    }
}

impl ShellArgs {
    /// `ebiq shell`.
    fn into_command(self) -> Result<Command, String> {
        let mut shell = ShellSettings {
            format: self.format,
            ..ShellSettings::default()
        };
        if self.no_history {
            shell.history = None;
        }
        Ok(Command::Shell {
            session: session_settings(self.session),
            shell,
        })
    }
}

impl ServeArgs {
    /// `ebiq serve`, or `--add-user`: beyond loopback only with logins and TLS.
    fn into_command(self) -> Result<Command, String> {
        if let (Some(name), Some(role), Some(users)) = (self.add_user, self.role, &self.users) {
            return Ok(Command::AddUser(AddUserSettings {
                name,
                role: role.parse().map_err(|e| format!("--role {role}: {e}"))?,
                users: users.clone(),
            }));
        }
        let tls = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            _ => None,
        };
        if !self.listen.ip().is_loopback() {
            let missing: Vec<&str> = [
                self.users.is_none().then_some("--users (logins)"),
                tls.is_none().then_some("--tls-cert and --tls-key (TLS)"),
            ]
            .into_iter()
            .flatten()
            .collect();
            if !missing.is_empty() {
                return Err(format!(
                    "--listen {}: ebiq serve listens beyond this machine only with logins \
                     and TLS; missing {}",
                    self.listen,
                    missing.join(" and ")
                ));
            }
        }
        Ok(Command::Serve {
            session: session_settings(self.session),
            serve: ServeSettings {
                listen: self.listen,
                queries: self.queries.unwrap_or_else(|| project_path("queries")),
                users: self.users,
                tls,
                audit: self.audit,
                limits: Limits {
                    max_connections: self.max_connections,
                    statement_timeout: self.statement_timeout,
                    idle_timeout: self.idle_timeout,
                },
            },
        })
    }
}

impl SchedulerArgs {
    /// `ebiq scheduler`.
    fn into_command(self) -> Result<Command, String> {
        Ok(Command::Scheduler(SchedulerSettings {
            bind: self.bind,
            rules: RuleSource::from_folder(self.rules),
        }))
    }
}

impl ExecutorArgs {
    /// `ebiq executor`: the scheduler's `HOST:PORT`.
    fn into_command(self) -> Result<Command, String> {
        let (host, port) = self
            .scheduler
            .rsplit_once(':')
            .and_then(|(host, port)| Some((host.to_owned(), port.parse().ok()?)))
            .ok_or_else(|| format!("--scheduler {} is not HOST:PORT", self.scheduler))?;
        Ok(Command::Executor(ExecutorSettings {
            scheduler_host: host,
            scheduler_port: port,
            bind_host: self.bind,
            port: self.port,
            grpc_port: self.grpc_port,
            cores: self.cores,
            work_dir: self.work_dir,
            rules: RuleSource::from_folder(self.rules),
        }))
    }
}

impl GenerateArgs {
    /// `ebiq generate`: at least one row.
    fn into_command(self) -> Result<Command, String> {
        if self.rows == 0 {
            return Err("--rows must be at least 1".into());
        }
        Ok(Command::Generate(GenerateSettings {
            opa_rows: self.rows,
            apcs_rows: self.apcs_rows.unwrap_or(self.rows / 5),
            out: self.out,
            seed: self.seed,
            months: self.months,
            layout: self.layout,
            force: self.force,
            threads: if self.threads == 0 {
                cores()
            } else {
                self.threads
            },
        }))
    }
}

fn session_settings(args: SessionArgs) -> SessionSettings {
    SessionSettings {
        data: args
            .data
            .unwrap_or_else(|| project_path("data-samples").display().to_string()),
        rules: RuleSource::from_folder(args.rules),
        null_mode: args.null_mode,
        target_partitions: args.partitions,
        memory_limit: args.memory_limit,
        cluster: args.cluster,
        as_of: args.as_of,
        catalog: DEFAULT_CATALOG.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_duration, parse_size};

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(
            parse_duration("30s"),
            Ok(std::time::Duration::from_secs(30))
        );
        assert_eq!(
            parse_duration("5min"),
            Ok(std::time::Duration::from_secs(300))
        );
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn sizes_are_powers_of_1024() {
        assert_eq!(parse_size("4G"), Ok(4 << 30));
        assert_eq!(parse_size("512m"), Ok(512 << 20));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("64kb"), Ok(64 << 10));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("4X").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("0").is_err());
    }
}
