//! A running `ebiq serve` for the tests that talk to it through `tokio-postgres`: started on
//! 127.0.0.1 with a port the system picks, in the project folder, and killed when dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Duration;

use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use super::{binary, project};

/// A running `ebiq serve`, killed when dropped.
pub struct Server {
    child: Child,
    /// Where it listens.
    pub address: SocketAddr,
    /// Every line it has written to stderr since it started listening.
    pub stderr: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts the server over the sample data and waits (at most two minutes) for its
    /// "listening on" line.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// [`Server::start`] with more of `serve`'s options.
    pub fn start_with(options: &[&str]) -> Self {
        let mut child = Command::new(binary())
            .args(["serve", "--quiet", "--listen", "127.0.0.1:0"])
            .args(options)
            .current_dir(project())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ebiq serve starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (sender, receiver) = mpsc::channel();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let kept = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("ebiq serve: listening on ") {
                    let address = rest.split(',').next().unwrap_or_default().to_owned();
                    let _ = sender.send(address);
                } else {
                    kept.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(line);
                }
            }
        });
        let address = receiver
            .recv_timeout(Duration::from_secs(120))
            .expect("the server says where it listens within two minutes")
            .parse()
            .expect("an address");
        Self {
            child,
            address,
            stderr: lines,
        }
    }

    /// Connects as `user` with `password`, giving the error a refused login gets.
    pub async fn connect_as(
        &self,
        user: &str,
        password: &str,
    ) -> Result<Client, tokio_postgres::Error> {
        let mut config = tokio_postgres::Config::new();
        config
            .host(self.address.ip().to_string())
            .port(self.address.port())
            .user(user)
            .password(password)
            .dbname("ebiq")
            .connect_timeout(Duration::from_secs(10));
        let (client, connection) = config.connect(NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub async fn connect(&self) -> Client {
        let config = format!(
            "host={} port={} user=analyst dbname=ebiq connect_timeout=10",
            self.address.ip(),
            self.address.port()
        );
        let (client, connection) = tokio_postgres::connect(&config, NoTls)
            .await
            .expect("connects");
        tokio::spawn(connection);
        client
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The rows of a simple query as text cells, NULL as `None`.
pub async fn rows(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
        .into_iter()
        .filter_map(|message| match message {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_owned))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// Equal as numbers where both are numbers (the CSV writer and the wire may spell a double
/// differently), else as text.
pub fn same_cell(wire: Option<&str>, csv: &str) -> bool {
    let wire = wire.unwrap_or("");
    match (wire.parse::<f64>(), csv.parse::<f64>()) {
        (Ok(a), Ok(b)) => a == b || (a - b).abs() <= 1e-12 * a.abs().max(b.abs()),
        _ => wire == csv,
    }
}

/// The start-up packet of protocol 3.0 for `user` and the database `ebiq`, for tests that speak
/// the protocol byte by byte.
pub fn startup_packet(user: &str) -> Vec<u8> {
    let mut body = 196_608_u32.to_be_bytes().to_vec();
    for (key, value) in [("user", user), ("database", "ebiq")] {
        body.extend_from_slice(key.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut packet = u32::try_from(body.len() + 4)
        .expect("a short packet")
        .to_be_bytes()
        .to_vec();
    packet.extend(body);
    packet
}
