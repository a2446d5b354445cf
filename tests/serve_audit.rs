//! `ebiq serve --audit FILE`: one JSON line per statement, whatever its outcome, with who ran it
//! and never a result value; through `tokio-postgres` in both protocols.

mod common;

use std::time::Duration;

use common::scratch;
use common::server::Server;

#[tokio::test(flavor = "multi_thread")]
async fn every_statement_is_recorded_with_its_outcome_and_no_values() {
    let dir = scratch("serve-audit");
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    let users = dir.join("users");
    let audit = dir.join("audit.jsonl");
    let mut add = std::process::Command::new(common::binary())
        .args(["serve", "--add-user", "ana", "--role", "analyst", "--users"])
        .arg(&users)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("ebiq starts");
    std::io::Write::write_all(
        &mut add.stdin.take().expect("piped"),
        b"audit me\naudit me\n",
    )
    .expect("written");
    assert!(add.wait().expect("ends").success());

    let server = Server::start_with(&[
        "--users",
        users.to_str().expect("utf-8"),
        "--audit",
        audit.to_str().expect("utf-8"),
        "--statement-timeout",
        "1s",
    ]);
    let client = server.connect_as("ana", "audit me").await.expect("logs in");
    let long = "SELECT count(*) FROM opa a JOIN opa b ON a.der_activity_month = \
                b.der_activity_month AND a.der_provider_code <> b.der_provider_code";
    let expected = [
        ("SELECT count(*) FROM opa", "00000", 1),
        ("DROP TABLE opa", "42501", 0),
        ("SELECT no_such_column FROM opa", "42703", 0),
        (long, "57014", 0),
    ];
    for (sql, _, _) in &expected {
        let _ = tokio::time::timeout(Duration::from_secs(60), client.simple_query(sql))
            .await
            .expect("ends within a minute");
    }
    // The extended protocol: the guard refuses when the statement is parsed.
    let _ = client.query("DROP TABLE opa", &[]).await;
    let bound = client
        .query(
            "SELECT count(*) FROM opa WHERE der_provider_code = $1",
            &[&"RXH"],
        )
        .await
        .expect("runs");
    assert_eq!(bound.len(), 1);
    drop(client);

    let text = std::fs::read_to_string(&audit).expect("the audit file");
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    let keys = [
        "client",
        "duration_ms",
        "role",
        "rows",
        "sql",
        "sqlstate",
        "time",
        "user",
    ];
    for record in &records {
        let object = record.as_object().expect("an object");
        let mut found: Vec<&str> = object.keys().map(String::as_str).collect();
        found.sort_unstable();
        assert_eq!(found, keys, "only these fields, never a value: {record}");
        assert_eq!(record["user"], "ana");
        assert_eq!(record["role"], "analyst");
        let client = record["client"].as_str().expect("text");
        assert!(client.starts_with("127.0.0.1:"), "{client}");
    }
    let outcome = |sql: &str| -> Vec<(String, u64)> {
        records
            .iter()
            .filter(|r| r["sql"] == sql)
            .map(|r| {
                (
                    r["sqlstate"].as_str().expect("text").to_owned(),
                    r["rows"].as_u64().expect("a count"),
                )
            })
            .collect()
    };
    for (sql, state, rows) in expected {
        let recorded = outcome(sql);
        assert!(
            recorded.contains(&(state.to_owned(), rows)),
            "{sql}: {recorded:?}"
        );
    }
    assert_eq!(
        outcome("DROP TABLE opa"),
        [("42501".to_owned(), 0), ("42501".to_owned(), 0)],
        "refused in both protocols"
    );
    assert_eq!(
        outcome("SELECT count(*) FROM opa WHERE der_provider_code = $1"),
        [("00000".to_owned(), 1)]
    );
}
