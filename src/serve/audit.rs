//! The audit trail (`--audit FILE`): one JSON line per statement, written and flushed as the
//! statement ends: when, who (user, role, client address), the SQL, how long, how many rows, and
//! the outcome as a SQLSTATE (`00000` for success). Never a result value. A statement whose rows
//! stop being read (the client went away) ends with `08006`.
//!
//! [`Audited`] wraps the query handlers of `datafusion-postgres`; without `--audit` it only
//! passes statements on.

use std::fmt::Debug;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;

use anyhow::Context as _;
use async_trait::async_trait;
use datafusion_postgres::DfSessionService;
use datafusion_postgres::pgwire::api::portal::Portal;
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::results::Response;
use datafusion_postgres::pgwire::api::store::PortalStore;
use datafusion_postgres::pgwire::api::{ClientInfo, ClientPortalStore, METADATA_USER};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::PgWireBackendMessage;
use datafusion_postgres::pgwire::messages::extendedquery::Parse;
use futures::{Sink, Stream};

use super::errors::error_info;
use super::idle::{Activity, Busy};
use super::login::ROLE;
use crate::dataset::validate::InputFile;

/// The audit file, shared by every connection.
#[derive(Debug)]
pub(super) struct AuditLog {
    file: Mutex<BufWriter<File>>,
}

impl AuditLog {
    /// Opens `path` for appending (creating it, readable by its owner only on Unix).
    pub(super) fn open(path: &Path) -> anyhow::Result<Self> {
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options
            .open(path)
            .with_context(|| format!("cannot open the audit file {}", path.display()))?;
        Ok(Self {
            file: Mutex::new(BufWriter::new(file)),
        })
    }

    fn write(&self, record: &serde_json::Value) {
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        // An audit line that cannot be written is said on stderr; the statement has ended.
        let written = serde_json::to_writer(&mut *file, record)
            .map_err(std::io::Error::from)
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.flush());
        if let Err(error) = written {
            eprintln!("ebiq serve: cannot write the audit record: {error}");
        }
    }
}

/// Who ran a statement, taken from the connection when the statement starts.
#[derive(Debug, Clone)]
struct Statement {
    user: String,
    role: String,
    client: String,
    sql: String,
    started: Instant,
}

impl Statement {
    fn of<C: ClientInfo>(client: &C, sql: &str) -> Self {
        let metadata = client.metadata();
        Self {
            user: metadata.get(METADATA_USER).cloned().unwrap_or_default(),
            role: metadata.get(ROLE).cloned().unwrap_or_default(),
            client: client.socket_addr().to_string(),
            sql: sql.to_owned(),
            started: Instant::now(),
        }
    }

    fn record(&self, rows: u64, sqlstate: &str) -> serde_json::Value {
        serde_json::json!({
            "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "user": self.user,
            "role": self.role,
            "client": self.client,
            "sql": self.sql,
            "duration_ms": (self.started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
            "rows": rows,
            "sqlstate": sqlstate,
        })
    }
}

/// A statement from its start until its outcome is known: it keeps the connection busy (for the
/// idle timeout) and, with `--audit`, writes its record once, when it ends. Dropped before then
/// (the client went away, or closed its cursor, before the last row), it ends with `08006`.
struct Running {
    busy: Option<Busy>,
    record: Option<(Statement, Arc<AuditLog>, Arc<Vec<InputFile>>)>,
    rows: u64,
}

impl Running {
    /// Another statement's worth of the same (the responses of one simple query).
    fn fork(&self, activity: &Arc<Activity>) -> Self {
        Self {
            busy: Some(activity.begin()),
            record: self.record.clone(),
            rows: 0,
        }
    }

    /// Ends without a record: its responses carry their own.
    fn disarm(mut self) {
        self.record = None;
    }

    fn finish(&mut self, sqlstate: &str) {
        if let Some((statement, log, _)) = self.record.take() {
            log.write(&statement.record(self.rows, sqlstate));
        }
        self.busy = None;
    }

    fn finish_with_error(&mut self, error: &PgWireError) {
        let state = match &self.record {
            Some((_, _, inputs)) => sqlstate_of(error, inputs),
            None => String::new(),
        };
        self.finish(&state);
    }

    /// Settles `outcome` now or, for rows still to be sent, when they end.
    fn settle(mut self, outcome: PgWireResult<Response>) -> PgWireResult<Response> {
        match outcome {
            Ok(Response::Query(mut query)) => {
                let rows = std::mem::replace(query.data_rows(), Box::pin(futures::stream::empty()));
                *query.data_rows() = Box::pin(Sending {
                    rows,
                    running: self,
                });
                Ok(Response::Query(query))
            }
            Ok(Response::CopyOut(mut copy)) => {
                let rows =
                    std::mem::replace(&mut copy.data_stream, Box::pin(futures::stream::empty()));
                copy.data_stream = Box::pin(Sending {
                    rows,
                    running: self,
                });
                Ok(Response::CopyOut(copy))
            }
            Ok(Response::Error(info)) => {
                self.finish(&info.code);
                Ok(Response::Error(info))
            }
            Ok(other) => {
                self.finish("00000");
                Ok(other)
            }
            Err(error) => {
                self.finish_with_error(&error);
                Err(error)
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.finish("08006");
    }
}

/// A statement's rows on their way to the client, counted.
struct Sending<S> {
    rows: S,
    running: Running,
}

impl<S, T> Stream for Sending<S>
where
    S: Stream<Item = PgWireResult<T>> + Unpin,
{
    type Item = PgWireResult<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = Pin::new(&mut self.rows).poll_next(cx);
        match &next {
            Poll::Ready(Some(Ok(_))) => self.running.rows += 1,
            Poll::Ready(Some(Err(error))) => self.running.finish_with_error(error),
            Poll::Ready(None) => self.running.finish("00000"),
            Poll::Pending => {}
        }
        next
    }
}

/// The SQLSTATE a client sees for `error`.
fn sqlstate_of(error: &PgWireError, inputs: &[InputFile]) -> String {
    match error {
        PgWireError::UserError(info) => info.code.clone(),
        PgWireError::ApiError(inner) => {
            error_info(inner.as_ref(), inputs).map_or_else(|| "XX000".to_owned(), |info| info.code)
        }
        PgWireError::QueryCanceled => "57014".to_owned(),
        _ => "XX000".to_owned(),
    }
}

/// The query handlers of `datafusion-postgres`, with each statement audited when `log` is set.
pub(super) struct Audited {
    pub(super) inner: Arc<DfSessionService>,
    pub(super) log: Option<Arc<AuditLog>>,
    pub(super) inputs: Arc<Vec<InputFile>>,
    /// The connection's activity, for the idle timeout.
    pub(super) activity: Arc<Activity>,
}

impl Audited {
    /// A statement of `client`'s starts.
    fn start<C: ClientInfo>(&self, client: &C, sql: &str) -> Running {
        Running {
            busy: Some(self.activity.begin()),
            record: self
                .log
                .as_ref()
                .map(|log| (Statement::of(client, sql), log.clone(), self.inputs.clone())),
            rows: 0,
        }
    }
}

#[async_trait]
impl SimpleQueryHandler for Audited {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let running = self.start(client, query);
        let responses = SimpleQueryHandler::do_query(self.inner.as_ref(), client, query).await;
        match responses {
            // Each response's rows keep the connection busy until sent, and have their record.
            Ok(responses) => {
                let settled = responses
                    .into_iter()
                    .map(|response| running.fork(&self.activity).settle(Ok(response)))
                    .collect();
                running.disarm();
                settled
            }
            Err(error) => running.settle(Err(error)).map(|response| vec![response]),
        }
    }
}

#[async_trait]
impl ExtendedQueryHandler for Audited {
    type Statement = <DfSessionService as ExtendedQueryHandler>::Statement;
    type QueryParser = <DfSessionService as ExtendedQueryHandler>::QueryParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.inner.query_parser()
    }

    /// A statement refused or failing when parsed (the read-only guard refuses there) never
    /// reaches `do_query`: its record is written here.
    async fn on_parse<C>(&self, client: &mut C, message: Parse) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut running = self.start(client, &message.query);
        let parsed = ExtendedQueryHandler::on_parse(self.inner.as_ref(), client, message).await;
        match &parsed {
            Err(error) => running.finish_with_error(error),
            // Parsed: its record is its execution's.
            Ok(()) => running.disarm(),
        }
        parsed
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let running = self.start(client, &portal.statement.statement.0);
        let outcome =
            ExtendedQueryHandler::do_query(self.inner.as_ref(), client, portal, max_rows).await;
        running.settle(outcome)
    }
}
