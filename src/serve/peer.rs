//! A client that goes away while its statement runs (killed, its laptop closed, the network cut)
//! ends that statement at once. Otherwise the server learns of it only when it next writes, which
//! for an aggregate over the whole dataset is when all the work is done and the memory was held
//! for nobody. As PostgreSQL's `client_connection_check_interval`, the socket of a connection with
//! a statement running is checked a few times a second for the client's end of stream.

use std::io::{ErrorKind, Write};
use std::time::Duration;

use bytes::BytesMut;
use datafusion_postgres::pgwire::error::ErrorInfo;
use datafusion_postgres::pgwire::messages::PgWireBackendMessage;
use tokio::net::TcpStream;

use super::idle::Activity;

/// How often a running statement's client is checked: a syscall each time, and a vanished
/// client's statement is stopped within it.
const CHECK_EVERY: Duration = Duration::from_millis(250);

/// A second handle on a connection's socket, for looking without reading.
pub(super) struct Watch(Option<std::net::TcpStream>);

impl Watch {
    /// Watches `socket`; with no second handle to be had (out of file descriptors), never
    /// reports.
    pub(super) fn of(socket: &TcpStream) -> Self {
        Self(duplicate(socket))
    }

    /// Resolves once the client has closed its end while a statement of the connection ran.
    pub(super) async fn gone(&self, activity: &Activity) {
        let Some(socket) = &self.0 else {
            return std::future::pending().await;
        };
        let mut byte = [0_u8; 1];
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            if !activity.is_running() {
                continue;
            }
            // Peeking leaves whatever the client sent for the protocol to read; only the end of
            // stream (or a reset) with nothing before it says the client is gone.
            match socket.peek(&mut byte) {
                Ok(0) => return,
                Ok(_) => {}
                Err(error) if error.kind() == ErrorKind::WouldBlock => {}
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    /// Tells the client, on a connection without TLS, that its last message broke the protocol:
    /// the connection's own writer is gone with the panic its message caused (see `serve::run`).
    /// Best effort: the connection is closed next either way.
    pub(super) fn protocol_violation(&self, message: &str) {
        let Some(mut socket) = self.0.as_ref() else {
            return;
        };
        let info = ErrorInfo::new("FATAL".to_owned(), "08P01".to_owned(), message.to_owned());
        let mut bytes = BytesMut::new();
        if PgWireBackendMessage::ErrorResponse(info.into())
            .encode(&mut bytes)
            .is_ok()
        {
            let _ = socket.write_all(&bytes);
        }
    }
}

#[cfg(unix)]
fn duplicate(socket: &TcpStream) -> Option<std::net::TcpStream> {
    use std::os::fd::AsFd;
    let owned = socket.as_fd().try_clone_to_owned().ok()?;
    let socket = std::net::TcpStream::from(owned);
    // The duplicate shares the original's open file, which tokio already made non-blocking.
    socket.set_nonblocking(true).ok()?;
    Some(socket)
}

#[cfg(not(unix))]
fn duplicate(_socket: &TcpStream) -> Option<std::net::TcpStream> {
    None
}

/// How long a stopped statement's tasks are given to unwind and free what they held.
const UNWIND: Duration = Duration::from_secs(1);

/// Once a stopped statement's memory is freed, gives the allocator's free pages back to the
/// system. glibc keeps freed memory in per-thread arenas for reuse, so after a large statement
/// is stopped the server would go on holding hundreds of megabytes that no statement uses; an
/// operator watching the server's memory could not tell that from a leak.
pub(super) async fn release_abandoned_memory() {
    tokio::time::sleep(UNWIND).await;
    // A walk of the allocator's arenas: off the threads that run statements.
    let _ = tokio::task::spawn_blocking(trim_allocator).await;
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim_allocator() {
    // SAFETY: malloc_trim takes no pointers and only returns unused pages of glibc's own heap
    // to the system; it is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_allocator() {}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    async fn connected() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds loopback");
        let address = listener.local_addr().expect("has an address");
        let client = TcpStream::connect(address).await.expect("connects");
        let (server, _) = listener.accept().await.expect("accepts");
        (client, server)
    }

    #[tokio::test]
    async fn a_client_gone_during_a_statement_is_noticed() {
        let (client, server) = connected().await;
        let activity = Arc::new(Activity::default());
        let _busy = activity.begin();
        let watch = Watch::of(&server);
        drop(client);
        tokio::time::timeout(Duration::from_secs(10), watch.gone(&activity))
            .await
            .expect("noticed within seconds");
    }

    #[tokio::test]
    async fn a_client_still_there_or_sending_is_not_gone() {
        let (mut client, server) = connected().await;
        tokio::io::AsyncWriteExt::write_all(&mut client, b"Q")
            .await
            .expect("writes");
        let activity = Arc::new(Activity::default());
        let _busy = activity.begin();
        let waited =
            tokio::time::timeout(CHECK_EVERY * 4, Watch::of(&server).gone(&activity)).await;
        assert!(waited.is_err(), "a client with bytes unread is still there");
    }

    #[tokio::test]
    async fn a_client_gone_while_idle_is_left_to_the_protocol() {
        let (client, server) = connected().await;
        let activity = Arc::new(Activity::default());
        drop(client);
        let waited =
            tokio::time::timeout(CHECK_EVERY * 4, Watch::of(&server).gone(&activity)).await;
        assert!(
            waited.is_err(),
            "with no statement running, pgwire's own read sees the end"
        );
    }
}
