//! One client connection: its own session, `datafusion-postgres`'s query handlers over it, and the
//! server-wide cancel and error handling.

use std::sync::{Arc, Mutex};

use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::pgwire::api::auth::StartupHandler;
use datafusion_postgres::pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::{ClientInfo, ErrorHandler, PgWireServerHandlers};
use datafusion_postgres::pgwire::error::PgWireError;
use datafusion_postgres::{DfSessionService, QueryHook};

use super::Served;
use super::audit::Audited;
use super::cancel::{CancelRequests, CancelSignal};
use super::catalog_sql::CatalogSql;
use super::copy::CopyHook;
use super::errors::error_info;
use super::idle::Activity;
use super::login::{Slot, Startup};
use super::publisher::PublisherOnly;
use super::read_only::ReadOnly;
use super::respond::Planned;
use super::savepoint::SavepointHook;
use super::set::{EbiqSetHook, EbiqShow};
use super::struct_json::StructsAsJson;
use crate::dataset::validate::InputFile;

/// The handlers of one connection.
pub(super) struct Handlers {
    /// What the idle timeout watches.
    pub(super) activity: Arc<Activity>,
    queries: Arc<Audited>,
    startup: Arc<Startup>,
    cancel: Arc<CancelRequests>,
    errors: Arc<SqlStateErrors>,
}

impl Handlers {
    /// Handlers over a new session of `served`'s.
    pub(super) fn new(served: &Served) -> Self {
        // The read-only guard before everything. Then ours: `datafusion-postgres`'s SET hook accepts any setting and drops DataFusion's
        // error, so a mistyped `SET ebiq.null_mode` would silently leave the mode as it was, and
        // its SHOW answers ebiq's settings with an empty value.
        let hooks: Vec<Arc<dyn QueryHook>> = vec![
            Arc::new(ReadOnly),
            Arc::new(PublisherOnly(served.published.clone())),
            Arc::new(EbiqSetHook),
            Arc::new(Planned(EbiqShow)),
            Arc::new(CopyHook),
            Arc::new(SavepointHook),
            Arc::new(Planned(CatalogSql)),
            Arc::new(Planned(StructsAsJson)),
            Arc::new(CursorStatementHook),
            Arc::new(SetShowHook),
            Arc::new(TransactionStatementHook),
        ];
        let signal = Arc::new(CancelSignal::default());
        let activity = Arc::new(Activity::default());
        Self {
            activity: activity.clone(),
            queries: Arc::new(Audited {
                inner: Arc::new(DfSessionService::new_with_hooks(
                    served.connection_session(&signal),
                    hooks,
                )),
                log: served.audit.clone(),
                inputs: served.inputs.clone(),
                activity: activity.clone(),
            }),
            startup: Arc::new(Startup {
                slot: Slot::take(&served.open, served.limits.max_connections),
                logins: served.logins.clone(),
                tls_required: served.tls_required,
                connections: served.connections.clone(),
                cancel_signals: served.cancel_signals.clone(),
                signal,
                pids: served.pids.clone(),
                exchange: Mutex::new(None),
                registration: Mutex::new(None),
            }),
            cancel: Arc::new(CancelRequests {
                planning: Arc::new(DefaultCancelHandler::new(served.connections.clone())),
                running: served.cancel_signals.clone(),
            }),
            errors: Arc::new(SqlStateErrors {
                inputs: served.inputs.clone(),
            }),
        }
    }
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.queries.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.queries.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        self.errors.clone()
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.cancel.clone()
    }
}

/// Gives DataFusion's errors PostgreSQL's SQLSTATE codes (a client sees `XX000` for every one
/// otherwise) and the messages `ebiq sql` gives.
struct SqlStateErrors {
    inputs: Arc<Vec<InputFile>>,
}

impl ErrorHandler for SqlStateErrors {
    fn on_error<C>(&self, _client: &C, error: &mut PgWireError)
    where
        C: ClientInfo,
    {
        if let PgWireError::ApiError(inner) = error
            && let Some(info) = error_info(inner.as_ref(), &self.inputs)
        {
            *error = PgWireError::UserError(Box::new(info));
        }
    }
}
