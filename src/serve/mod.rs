//! `ebiq serve`: the PostgreSQL wire protocol over the same session as `ebiq sql`, so that R, Python,
//! Power BI, Excel and SQL clients query ebiq through the drivers analysts already have.
//!
//! The protocol, PostgreSQL's catalogue tables and the encoding of Arrow results are
//! `datafusion-postgres`'s (on `pgwire`). ebiq adds what that crate leaves to its users: a session
//! of its own for each connection (so a `SET` changes only that connection), the report queries as
//! `reports.*` views, PostgreSQL's SQLSTATE codes on ebiq's own error messages, and the few
//! functions clients call at connect time that DataFusion answers differently from PostgreSQL.

mod audit;
mod cancel;
mod catalog_sql;
mod connection;
mod copy;
mod errors;
mod idle;
mod like_escape;
mod login;
mod on_cluster;
mod parse_expr;
mod peer;
mod pg_functions;
mod publisher;
mod read_only;
mod reports;
mod respond;
mod savepoint;
mod scram;
mod set;
mod struct_json;
mod tables;
mod tls;
pub mod users;
mod vectors;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::session_state::SessionState;
use datafusion::prelude::SessionContext;
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::setup_pg_catalog;
use datafusion_postgres::{datafusion_pg_catalog, pgwire};
use futures::FutureExt;
use pgwire::api::{ConnectionManager, RandomPidSecretKeyGenerator};
use tokio::net::TcpListener;

use crate::dataset::validate::InputFile;
use crate::session::{self, SessionSettings};
use cancel::{CancelOnRequest, CancelSignal, CancelSignals};

pub use reports::{ReportRange, view_name};

/// The database name clients see (`current_database()`, `pg_database`), and the catalog that
/// holds the served tables.
pub const DATABASE: &str = "ebiq";

/// What to serve and where, already validated.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// The address to listen on (a loopback address unless there are logins and TLS).
    pub listen: SocketAddr,
    /// The folder of report queries served as `reports.*` views.
    pub queries: PathBuf,
    /// The users file; without one, any user name is taken without a password.
    pub users: Option<PathBuf>,
    /// What one connection, and all of them, may hold.
    pub limits: Limits,
    /// The audit file: a JSON line per statement.
    pub audit: Option<PathBuf>,
    /// The server's certificate chain and private key (PEM), for TLS.
    pub tls: Option<TlsFiles>,
}

/// The server's limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once; one more is refused with `53300`.
    pub max_connections: usize,
    /// How long a statement may run before it is stopped with `57014`.
    pub statement_timeout: Option<std::time::Duration>,
    /// How long a connection may sit with no statement running before it is closed.
    pub idle_timeout: Option<std::time::Duration>,
}

/// The PEM files TLS needs.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain, the server's own first.
    pub cert: PathBuf,
    /// The private key of the first certificate.
    pub key: PathBuf,
}

/// `ebiq serve --add-user NAME --role ROLE --users FILE`.
#[derive(Debug, Clone)]
pub struct AddUserSettings {
    /// The login's name.
    pub name: String,
    /// What it may do.
    pub role: users::Role,
    /// The users file to add it to (created if absent).
    pub users: PathBuf,
}

/// What every connection shares: the session it starts from, and what its errors need.
#[derive(Debug)]
struct Served {
    /// The served session's state; each connection runs in a copy of it, sharing the tables,
    /// functions and memory pool but not its settings.
    state: SessionState,
    /// The dataset's files, named in errors about missing SUS columns.
    inputs: Arc<Vec<InputFile>>,
    /// Every open connection, by the key a client's cancel request names (pgwire's, which stops a
    /// statement still planning).
    connections: Arc<ConnectionManager>,
    /// The same, for the signal that stops a statement while it runs.
    cancel_signals: Arc<CancelSignals>,
    /// Whether connections must use TLS (they must when the server has it).
    tls_required: bool,
    /// Who may log in; `None` admits anyone (loopback only).
    logins: Option<Arc<login::Logins>>,
    /// Each connection's process id and cancel key.
    pids: Arc<RandomPidSecretKeyGenerator>,
    limits: Limits,
    /// What a publisher's connection reads.
    published: publisher::Published,
    /// Where each statement is recorded.
    audit: Option<Arc<audit::AuditLog>>,
    /// The connections open now, counted against `limits.max_connections`.
    open: Arc<std::sync::atomic::AtomicUsize>,
}

/// The whole command: opens the session, then serves connections until interrupted.
pub async fn run(session_settings: &SessionSettings, settings: &ServeSettings) -> Result<()> {
    let served = prepare(session_settings, settings).await?;
    let tls = settings.tls.as_ref().map(tls::acceptor).transpose()?;
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let address = listener.local_addr()?;
    // One line, always: a script (or a test) that passes port 0 learns the port from it.
    let logins = match &served.logins {
        Some(logins) => format!(
            "{} logins from {}",
            logins.users.0.len(),
            display(&settings.users)
        ),
        None => "no logins: any user name is accepted without a password, so ebiq listens on \
                 loopback only"
            .to_owned(),
    };
    let tls_state = if tls.is_some() { "TLS" } else { "no TLS" };
    eprintln!("ebiq serve: listening on {address}, database {DATABASE}; {logins}; {tls_state}.");
    let served = Arc::new(served);
    contain_connection_panics();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let handlers = connection::Handlers::new(&served);
                    let activity = handlers.activity.clone();
                    let idle_timeout = served.limits.idle_timeout;
                    let tls = tls.clone();
                    let with_tls = tls.is_some();
                    let watch = peer::Watch::of(&socket);
                    tokio::spawn(async move {
                        let gone = watch.gone(&activity);
                        let connection = std::panic::AssertUnwindSafe(
                            pgwire::tokio::process_socket(socket, tls, handlers),
                        )
                        .catch_unwind();
                        let idle = async {
                            match idle_timeout {
                                Some(limit) => activity.idle(limit).await,
                                None => std::future::pending().await,
                            }
                        };
                        // Dropping the connection's future closes its socket.
                        let served = tokio::select! {
                            served = connection => served,
                            () = idle => {
                                eprintln!(
                                    "ebiq serve: connection from {peer} closed: idle longer \
                                     than --idle-timeout"
                                );
                                return;
                            }
                            () = gone => {
                                eprintln!(
                                    "ebiq serve: connection from {peer} closed: the client went \
                                     away while its statement ran"
                                );
                                peer::release_abandoned_memory().await;
                                return;
                            }
                        };
                        match served {
                            Ok(Ok(())) => {}
                            Ok(Err(error)) => {
                                eprintln!("ebiq serve: connection from {peer} ended: {error}");
                            }
                            // pgwire 0.41's message decoders index past the end of a malformed
                            // message (a Bind whose lengths lie) instead of returning an error.
                            // That ends this connection only; its socket is closed here.
                            Err(_) => {
                                if !with_tls {
                                    watch.protocol_violation(
                                        "a message could not be decoded; the connection is closed",
                                    );
                                }
                                eprintln!(
                                    "ebiq serve: connection from {peer} ended: it sent a message \
                                     that could not be decoded"
                                );
                            }
                        }
                    });
                }
                Err(error) => eprintln!("ebiq serve: cannot accept a connection: {error}"),
            },
            _ = tokio::signal::ctrl_c() => {
                eprintln!("ebiq serve: interrupted, stopping");
                return Ok(());
            }
        }
    }
}

/// Panics while serving a connection end that connection (see [`run`]); said in one line on
/// stderr rather than as a backtrace, since one client's malformed message is not the server's
/// failure.
fn contain_connection_panics() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map_or_else(String::new, |l| format!(" at {}:{}", l.file(), l.line()));
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!("ebiq serve: internal error{location}: {message}");
    }));
}

fn display(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map_or_else(String::new, |p| p.display().to_string())
}

/// Adds a login to a users file, asking for its password twice.
pub fn add_user(settings: &AddUserSettings) -> Result<()> {
    let password = users::read_new_password()?;
    users::add_user(&settings.users, &settings.name, settings.role, &password)?;
    eprintln!(
        "ebiq serve: {} ({}) written to {}",
        settings.name,
        settings.role.as_str(),
        settings.users.display()
    );
    Ok(())
}

/// Opens the session named [`DATABASE`], with PostgreSQL's catalogue, the report views and the
/// connect-time functions clients expect.
async fn prepare(session_settings: &SessionSettings, settings: &ServeSettings) -> Result<Served> {
    let session_settings = SessionSettings {
        catalog: DATABASE.to_owned(),
        ..session_settings.clone()
    };
    let session = session::open(&session_settings).await?;
    let ctx = session.ctx;
    setup_pg_catalog(&ctx, DATABASE, EmptyContextProvider)
        .map_err(|error| anyhow!("cannot set up the PostgreSQL catalogue: {error}"))?;
    pg_functions::register(&ctx);
    vectors::register(&ctx);
    like_escape::register(&ctx);
    tables::present_as_tables(&ctx).await?;
    for skipped in reports::register(&ctx, &settings.queries).await? {
        eprintln!("ebiq serve: {skipped}");
    }
    let published = publisher::published(&ctx, DATABASE).await?;
    let mut state = ctx.state();
    if session_settings.cluster.is_some() {
        let remote = state.query_planner().clone();
        state = SessionStateBuilder::new_from_existing(state)
            .with_query_planner(Arc::new(on_cluster::ClusterOrLocal { remote }))
            .build();
    }
    let logins = match &settings.users {
        Some(path) => Some(Arc::new(login::Logins::new(users::Users::load(path)?))),
        None => None,
    };
    let audit = match &settings.audit {
        Some(path) => Some(Arc::new(audit::AuditLog::open(path)?)),
        None => None,
    };
    Ok(Served {
        published,
        audit,
        limits: settings.limits,
        open: Arc::default(),
        tls_required: settings.tls.is_some(),
        logins,
        pids: Arc::new(RandomPidSecretKeyGenerator::default()),
        state,
        inputs: Arc::new(session.inputs),
        connections: Arc::new(ConnectionManager::new()),
        cancel_signals: Arc::new(CancelSignals::default()),
    })
}

impl Served {
    /// A session for one connection: the served tables and functions, settings of its own, and
    /// plans that stop when `cancel` fires.
    fn connection_session(&self, cancel: &Arc<CancelSignal>) -> Arc<SessionContext> {
        let state = SessionStateBuilder::new_from_existing(self.state.clone())
            .with_physical_optimizer_rule(Arc::new(CancelOnRequest {
                signal: cancel.clone(),
                timeout: self.limits.statement_timeout,
            }))
            .build();
        Arc::new(SessionContext::new_with_state(state))
    }
}
