//! `ebiq serve --users`: SCRAM-SHA-256 logins from a users file written by `--add-user`, through
//! `tokio-postgres` (a client no one on the project wrote). A wrong password and an unknown name
//! get the same refusal, SQLSTATE 28P01.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::server::{Server, rows};
use common::{binary, scratch};
use tokio_postgres::error::SqlState;

/// `ebiq serve --add-user NAME --role ROLE --users FILE`, the password lines given on stdin.
fn add_user(users: &Path, name: &str, role: &str, lines: &str) -> std::process::Output {
    let mut child = Command::new(binary())
        .args(["serve", "--add-user", name, "--role", role, "--users"])
        .arg(users)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ebiq starts");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(lines.as_bytes())
        .expect("the password lines are written");
    child.wait_with_output().expect("ebiq ends")
}

#[tokio::test(flavor = "multi_thread")]
async fn logins_need_the_right_password_and_refusals_say_nothing_more() {
    let dir = scratch("serve-logins");
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    let users = dir.join("users");
    let added = add_user(&users, "ana", "analyst", "correct horse\ncorrect horse\n");
    assert!(added.status.success(), "{added:?}");
    let text = std::fs::read_to_string(&users).expect("the users file");
    assert!(text.contains("ana analyst SCRAM-SHA-256$4096:"), "{text}");
    assert!(!text.contains("horse"), "the password is not stored");

    let mismatch = add_user(&users, "pip", "publisher", "one\ntwo\n");
    assert_eq!(mismatch.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&users).expect("kept"), text);

    let server = Server::start_with(&["--users", users.to_str().expect("utf-8")]);
    let client = server
        .connect_as("ana", "correct horse")
        .await
        .expect("the right password logs in");
    assert_eq!(rows(&client, "SELECT 1").await[0][0].as_deref(), Some("1"));

    for (user, password) in [("ana", "wrong horse"), ("nobody", "correct horse")] {
        let error = server
            .connect_as(user, password)
            .await
            .expect_err("refused");
        let database_error = error.as_db_error().expect("the server's refusal");
        assert_eq!(database_error.code(), &SqlState::INVALID_PASSWORD, "{user}");
        assert_eq!(
            database_error.message(),
            format!("password authentication failed for user \"{user}\"")
        );
    }
}

#[test]
fn serve_beyond_loopback_needs_logins_and_tls() {
    let elsewhere = common::ebiq(&["serve", "--listen", "0.0.0.0:5433"]);
    assert_eq!(elsewhere.status.code(), Some(2));
    let message = common::stderr(&elsewhere);
    assert!(
        message.contains("missing --users (logins) and --tls-cert and --tls-key (TLS)"),
        "{message}"
    );
    let bad_role = common::ebiq(&[
        "serve",
        "--add-user",
        "x",
        "--role",
        "admin",
        "--users",
        "/nonexistent/users",
    ]);
    assert_eq!(bad_role.status.code(), Some(2));
    assert!(
        common::stderr(&bad_role).contains("unknown role 'admin'"),
        "{}",
        common::stderr(&bad_role)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_publisher_reads_only_suppressed_report_views() {
    let dir = scratch("serve-roles");
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    let users = dir.join("users");
    for (name, role) in [("pat", "publisher"), ("ana", "analyst")] {
        let added = add_user(&users, name, role, "a long passphrase\na long passphrase\n");
        assert!(added.status.success(), "{added:?}");
    }
    let suppressed = dir.join("suppressed");
    common::ebiq_ok(&[
        "report",
        "--quiet",
        "--suppress",
        "--format",
        "csv",
        "--out",
        suppressed.to_str().expect("utf-8"),
    ]);

    let server = Server::start_with(&["--users", users.to_str().expect("utf-8")]);
    let publisher = server
        .connect_as("pat", "a long passphrase")
        .await
        .expect("logs in");
    // The main report and a statistic, as `ebiq report --suppress` publishes them.
    for (view, csv) in [
        ("flagged_by_provider_month", "01_flagged_by_provider_month"),
        (
            "standardised_rates_by_commissioner",
            "06_standardised_rates_by_commissioner",
        ),
    ] {
        let text = std::fs::read_to_string(suppressed.join(format!("{csv}.csv"))).expect("CSV");
        let expected: Vec<Vec<Option<String>>> = text
            .lines()
            .skip(1)
            .map(|line| {
                line.split(',')
                    .map(|cell| (!cell.is_empty()).then(|| cell.to_owned()))
                    .collect()
            })
            .collect();
        let served = rows(&publisher, &format!("SELECT * FROM reports.{view}")).await;
        assert!(!served.is_empty(), "{view} has rows");
        assert_eq!(served, expected, "{view}");
    }
    let stars = rows(
        &publisher,
        "SELECT count(*) FROM reports.flagged_by_provider_month WHERE flagged = '*'",
    )
    .await;
    assert_ne!(stars[0][0].as_deref(), Some("0"), "small counts are hidden");
    let qualified = rows(
        &publisher,
        "SELECT count(*) FROM ebiq.reports.flagged_by_provider_month WHERE flagged = '*'",
    )
    .await;
    assert_eq!(
        qualified, stars,
        "the database's own name leads to the same views"
    );

    // A dashboard browsing the catalogue finds the views, as a publisher receives them, and
    // nothing else.
    let listed = rows(
        &publisher,
        "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n \
         ON c.relnamespace = n.oid WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
         ORDER BY 1",
    )
    .await;
    let listed: Vec<String> = listed
        .into_iter()
        .filter_map(|row| row[0].clone())
        .collect();
    assert!(
        listed.contains(&"flagged_by_provider_month".to_owned()),
        "{listed:?}"
    );
    assert!(!listed.contains(&"opa".to_owned()), "{listed:?}");
    let flagged_type = rows(
        &publisher,
        "SELECT data_type FROM information_schema.columns \
         WHERE table_name = 'flagged_by_provider_month' AND column_name = 'flagged'",
    )
    .await;
    assert_eq!(
        flagged_type,
        vec![vec![Some("Utf8".to_owned())]],
        "suppressed counts are text"
    );

    for sql in [
        "SELECT * FROM opa",
        "SELECT count(*) FROM apcs",
        "SELECT * FROM ebiq.public.opa",
        "EXPLAIN ANALYZE SELECT * FROM reports.headline",
    ] {
        let error = publisher.simple_query(sql).await.expect_err("refused");
        assert_eq!(
            error.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}"
        );
        let error = publisher.query(sql, &[]).await.expect_err("refused");
        assert_eq!(
            error.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}"
        );
    }

    // An analyst on the same server reads the figures themselves.
    let analyst = server
        .connect_as("ana", "a long passphrase")
        .await
        .expect("logs in");
    let stars = rows(
        &analyst,
        "SELECT count(*) FROM reports.flagged_by_provider_month WHERE CAST(flagged AS TEXT) = '*'",
    )
    .await;
    assert_eq!(stars[0][0].as_deref(), Some("0"));
    let count = rows(&analyst, "SELECT count(*) FROM opa").await;
    assert!(count[0][0].is_some());
}
