//! A connection's start-up: SCRAM-SHA-256 against the users file when there is one, otherwise
//! admission without a password (loopback only); then the connection is registered so that a
//! cancel request can find it.

use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use futures::{Sink, SinkExt};

use datafusion_postgres::pgwire::api::auth::{
    DefaultServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use datafusion_postgres::pgwire::api::{
    ClientInfo, ConnectionManager, METADATA_USER, PgWireConnectionState, PidSecretKeyGenerator,
    RandomPidSecretKeyGenerator,
};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::startup::Authentication;
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use super::cancel::{CancelSignal, CancelSignals, Registration};
use super::scram::{self, AwaitingProof, ScramError};
use super::users::{Role, Users};

/// The client metadata key under which a connection's role is kept once it has logged in.
pub(super) const ROLE: &str = "ebiq.role";

/// The mechanism offered: SCRAM-SHA-256 without channel binding.
const MECHANISM: &str = "SCRAM-SHA-256";

/// The users who may log in, and this run's secret for answering unknown names.
#[derive(Debug)]
pub(super) struct Logins {
    pub(super) users: Users,
    run_secret: [u8; 32],
}

impl Logins {
    pub(super) fn new(users: Users) -> Self {
        Self {
            users,
            run_secret: rand::random(),
        }
    }
}

/// A connection's place among those open, given back when the connection ends.
pub(super) struct Slot {
    open: Arc<AtomicUsize>,
    /// The limit, if this connection is past it.
    past: Option<usize>,
}

impl Slot {
    /// Takes a place among `open`, noting whether that is more than `max`.
    pub(super) fn take(open: &Arc<AtomicUsize>, max: usize) -> Self {
        let now = open.fetch_add(1, Ordering::SeqCst) + 1;
        Self {
            open: open.clone(),
            past: (now > max).then_some(max),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One connection's start-up.
pub(super) struct Startup {
    /// Held while the connection is open.
    pub(super) slot: Slot,
    pub(super) logins: Option<Arc<Logins>>,
    /// Whether the server has TLS, and so refuses connections without it.
    pub(super) tls_required: bool,
    pub(super) connections: Arc<ConnectionManager>,
    pub(super) cancel_signals: Arc<CancelSignals>,
    pub(super) signal: Arc<CancelSignal>,
    pub(super) pids: Arc<RandomPidSecretKeyGenerator>,
    /// The SCRAM exchange under way, with the role it would grant.
    pub(super) exchange: Mutex<Option<(AwaitingProof, Role)>>,
    /// Held while the connection is open.
    pub(super) registration: Mutex<Option<Registration>>,
}

/// The refusal for a wrong password and for an unknown name alike, as PostgreSQL words it.
fn refused(user: &str) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".to_owned(),
        "28P01".to_owned(),
        format!("password authentication failed for user \"{user}\""),
    )))
}

fn protocol_violation(what: &str) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".to_owned(),
        "08P01".to_owned(),
        format!("malformed SCRAM exchange: {what}"),
    )))
}

impl Startup {
    /// Lets the client in: its cancel key, its registration, and the parameters and
    /// `ReadyForQuery` that end a start-up.
    async fn admit<C>(&self, client: &mut C) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (pid, secret) = self.pids.generate(client);
        client.set_pid_and_secret_key(pid, secret.clone());
        let (handle, guard) = self.connections.register(pid, secret.clone());
        client.session_extensions().insert(handle);
        client.session_extensions().insert(guard);
        let registration = self.cancel_signals.register(pid, &secret, &self.signal);
        *self
            .registration
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(registration);
        finish_authentication(client, &DefaultServerParameterProvider::default()).await
    }
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                if let Some(max) = self.slot.past {
                    return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                        "FATAL".to_owned(),
                        "53300".to_owned(),
                        format!(
                            "sorry, too many clients already (this server takes {max} \
                             connections at once: --max-connections)"
                        ),
                    ))));
                }
                if self.tls_required && !client.is_secure() {
                    return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                        "FATAL".to_owned(),
                        "28000".to_owned(),
                        "this server accepts only TLS connections (sslmode=require or \
                         stricter)"
                            .to_owned(),
                    ))));
                }
                if self.logins.is_none() {
                    // Loopback only, and every connection an analyst's (see `serve`'s checks).
                    client
                        .metadata_mut()
                        .insert(ROLE.to_owned(), Role::Analyst.as_str().to_owned());
                    return self.admit(client).await;
                }
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client
                    .send(PgWireBackendMessage::Authentication(Authentication::SASL(
                        vec![MECHANISM.to_owned()],
                    )))
                    .await?;
                Ok(())
            }
            PgWireFrontendMessage::PasswordMessageFamily(message) => {
                let Some(logins) = &self.logins else {
                    return Err(protocol_violation("no password was asked for"));
                };
                let user = client
                    .metadata()
                    .get(METADATA_USER)
                    .cloned()
                    .unwrap_or_default();
                let pending = self
                    .exchange
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                let scram_error = |error| match error {
                    ScramError::Malformed(what) => protocol_violation(what),
                    ScramError::Refused => refused(&user),
                };
                match pending {
                    None => {
                        let initial = message.into_sasl_initial_response()?;
                        if initial.auth_method != MECHANISM {
                            return Err(protocol_violation("only SCRAM-SHA-256 is offered"));
                        }
                        let data = initial.data.unwrap_or_default();
                        let text = std::str::from_utf8(&data)
                            .map_err(|_| protocol_violation("not UTF-8"))?;
                        let (verifier, known, role) = match logins.users.0.get(&user) {
                            Some(found) => (found.verifier.clone(), true, found.role),
                            None => (
                                scram::unknown_user_verifier(&user, &logins.run_secret),
                                false,
                                Role::Publisher,
                            ),
                        };
                        let (first, awaiting) =
                            scram::server_first(text, verifier, known).map_err(scram_error)?;
                        *self.exchange.lock().unwrap_or_else(PoisonError::into_inner) =
                            Some((awaiting, role));
                        client
                            .send(PgWireBackendMessage::Authentication(
                                Authentication::SASLContinue(first.into_bytes().into()),
                            ))
                            .await?;
                        Ok(())
                    }
                    Some((awaiting, role)) => {
                        let response = message.into_sasl_response()?;
                        let text = std::str::from_utf8(&response.data)
                            .map_err(|_| protocol_violation("not UTF-8"))?;
                        let last = awaiting.server_final(text).map_err(scram_error)?;
                        client
                            .send(PgWireBackendMessage::Authentication(
                                Authentication::SASLFinal(last.into_bytes().into()),
                            ))
                            .await?;
                        client
                            .metadata_mut()
                            .insert(ROLE.to_owned(), role.as_str().to_owned());
                        self.admit(client).await
                    }
                }
            }
            _ => Ok(()),
        }
    }
}
