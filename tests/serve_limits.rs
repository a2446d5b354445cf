//! `ebiq serve`'s limits, through `tokio-postgres`: `--max-connections` refuses one connection too
//! many with 53300 and takes a new one once another ends; `--statement-timeout` stops a statement
//! that runs too long with 57014 and the connection goes on. (The memory limit's 53200 is tested
//! in tests/serve.rs.)

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::scratch;
use common::server::{Server, rows, startup_packet};
use tokio_postgres::error::SqlState;

#[tokio::test(flavor = "multi_thread")]
async fn one_connection_too_many_is_refused_until_another_ends() {
    let server = Server::start_with(&["--max-connections", "2"]);
    let first = server.connect().await;
    let second = server.connect().await;
    let refused = server
        .connect_as("analyst", "")
        .await
        .expect_err("a third connection is one too many");
    let error = refused.as_db_error().expect("the server's refusal");
    assert_eq!(error.code(), &SqlState::TOO_MANY_CONNECTIONS);
    assert!(
        error.message().contains("--max-connections"),
        "{}",
        error.message()
    );
    assert_eq!(rows(&first, "SELECT 1").await[0][0].as_deref(), Some("1"));

    drop(second);
    // The server learns of the closed connection shortly after: bounded retries.
    let mut third = None;
    for _ in 0..50 {
        if let Ok(client) = server.connect_as("analyst", "").await {
            third = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let third = third.expect("a place is free again once a connection ends");
    assert_eq!(rows(&third, "SELECT 2").await[0][0].as_deref(), Some("2"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_statement_past_the_timeout_is_stopped_and_the_connection_goes_on() {
    let server = Server::start_with(&["--statement-timeout", "1s"]);
    let client = server.connect().await;
    // About 150 million pairs: far longer than a second.
    let long = "SELECT count(*) FROM opa a JOIN opa b ON a.der_activity_month = b.der_activity_month \
                AND a.der_provider_code <> b.der_provider_code";
    let outcome = tokio::time::timeout(Duration::from_secs(60), client.simple_query(long))
        .await
        .expect("stopped within a minute");
    let error = outcome.expect_err("stopped by the timeout");
    let error = error.as_db_error().expect("the server's error");
    assert_eq!(error.code(), &SqlState::QUERY_CANCELED);
    assert!(
        error.message().contains("statement timeout"),
        "{}",
        error.message()
    );
    let count = rows(
        &client,
        "SELECT count(*) FROM opa WHERE der_provider_code = 'RXH'",
    )
    .await;
    assert!(count[0][0].is_some(), "a short statement runs");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_connection_is_closed_but_a_running_statement_is_not_idleness() {
    let server = Server::start_with(&["--idle-timeout", "1s", "--statement-timeout", "3s"]);
    let busy = server.connect().await;
    // Runs three seconds (stopped by the statement timeout), past the one-second idle timeout.
    let long = "SELECT count(*) FROM opa a JOIN opa b ON a.der_activity_month = b.der_activity_month \
                AND a.der_provider_code <> b.der_provider_code";
    let error = busy.simple_query(long).await.expect_err("stopped");
    assert_eq!(
        error.code(),
        Some(&SqlState::QUERY_CANCELED),
        "the statement ran to its own timeout: {error}"
    );

    let idle = server.connect().await;
    assert_eq!(rows(&idle, "SELECT 1").await[0][0].as_deref(), Some("1"));
    tokio::time::sleep(Duration::from_secs(4)).await;
    let closed = idle.simple_query("SELECT 1").await;
    assert!(closed.is_err(), "the idle connection was closed");
    assert!(idle.is_closed());
}

/// A client killed mid-statement: its socket closes with nothing said. The server stops the
/// statement (rather than running it to the end for nobody, holding its memory) and records it.
#[tokio::test(flavor = "multi_thread")]
async fn a_statement_whose_client_went_away_is_stopped() {
    let dir = scratch("serve-gone");
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    let audit = dir.join("audit.jsonl");
    let server = Server::start_with(&["--audit", audit.to_str().expect("utf-8")]);
    let mut stream = TcpStream::connect(server.address).expect("connects");
    stream
        .write_all(&startup_packet("analyst"))
        .expect("start-up sent");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a timeout");
    let mut answer = [0_u8; 4096];
    let read = stream.read(&mut answer).expect("the server answers");
    assert!(read > 0, "the server accepted the start-up");
    // Runs for minutes in a debug build.
    let long = "SELECT count(*) FROM opa a JOIN opa b ON a.der_activity_month = b.der_activity_month \
                AND a.der_provider_code <> b.der_provider_code\0";
    let mut query = b"Q".to_vec();
    query.extend_from_slice(&u32::try_from(long.len() + 4).expect("short").to_be_bytes());
    query.extend_from_slice(long.as_bytes());
    stream.write_all(&query).expect("query sent");
    std::thread::sleep(Duration::from_millis(500));
    drop(stream);

    let started = Instant::now();
    let said = |line: &str| {
        server
            .stderr
            .lock()
            .map(|lines| lines.iter().any(|l| l.contains(line)))
            .unwrap_or(false)
    };
    while !said("went away while its statement ran") && started.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        said("went away while its statement ran"),
        "the server noticed within seconds"
    );
    let records = std::fs::read_to_string(&audit).expect("the audit file");
    let record = records
        .lines()
        .find(|line| line.contains("a.der_provider_code <> b.der_provider_code"))
        .unwrap_or_else(|| panic!("the statement's record in {records}"));
    assert!(record.contains("\"sqlstate\":\"08006\""), "{record}");
    let client = server.connect().await;
    assert_eq!(rows(&client, "SELECT 1").await[0][0].as_deref(), Some("1"));
}
