//! `ebiq serve` through a PostgreSQL client library (`tokio-postgres`, which no one on the project
//! wrote): the report views equal `ebiq report`'s CSVs row for row, bound parameters, settings
//! kept per connection, `COPY ... TO STDOUT`, and PostgreSQL's SQLSTATE codes.
//!
//! The server listens on 127.0.0.1 with a port the system picks, over `data-samples/`, and is
//! killed when each test ends. The tests with Python, R, JDBC and psql clients are in
//! `tests/clients/`, run by `.ci/run`.

mod common;

use std::time::Duration;

use common::server::{Server, rows, same_cell};
use common::{ebiq_ok, scratch};
use futures::StreamExt;
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

/// The error's SQLSTATE, failing the test if `result` is not an error.
fn sqlstate<T: std::fmt::Debug>(result: Result<T, tokio_postgres::Error>) -> SqlState {
    let error = result.expect_err("an error");
    error.code().cloned().expect("a database error with a code")
}

#[tokio::test(flavor = "multi_thread")]
async fn report_views_equal_the_report_s_csvs_row_for_row() {
    let out = scratch("serve-views");
    ebiq_ok(&[
        "report",
        "--quiet",
        "--format",
        "csv",
        "--out",
        out.to_str().expect("utf-8 path"),
    ]);
    let server = Server::start();
    let client = server.connect().await;
    // The main report, and statistics: directly standardised rates by commissioner, the
    // casemix-adjusted ratio funnel (an aggregate over every provider inside the view) and the
    // DSR funnel.
    for query in [
        "01_flagged_by_provider_month",
        "06_standardised_rates_by_commissioner",
        "10_provider_casemix_funnel",
        "11_commissioner_dsr_funnel",
    ] {
        let csv = std::fs::read_to_string(out.join(format!("{query}.csv"))).expect("the CSV");
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
        let expected: Vec<Vec<&str>> = lines.map(|line| line.split(',').collect()).collect();
        let view = ebiq::serve::view_name(query);
        let got = rows(&client, &format!("SELECT * FROM reports.{view}")).await;
        assert_eq!(got.len(), expected.len(), "{query}: row count");
        assert!(!got.is_empty(), "{query} has rows");
        for (row, (wire, csv)) in got.iter().zip(&expected).enumerate() {
            assert_eq!(wire.len(), header.len(), "{query} row {row}: columns");
            for (column, (w, c)) in wire.iter().zip(csv).enumerate() {
                assert!(
                    same_cell(w.as_deref(), c),
                    "{query} row {row} column {}: wire {w:?}, csv {c:?}",
                    header[column]
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bound_parameters_count_as_literals_do() {
    let server = Server::start();
    let client = server.connect().await;
    let bound: i64 = client
        .query_one(
            "SELECT count(*) FROM opa WHERE der_provider_code = $1",
            &[&"RXH"],
        )
        .await
        .expect("runs")
        .get(0);
    let literal = rows(
        &client,
        "SELECT count(*) FROM opa WHERE der_provider_code = 'RXH'",
    )
    .await;
    assert_eq!(Some(bound.to_string()), literal[0][0]);
    assert!(bound > 0, "the sample has RXH appointments");
}

#[tokio::test(flavor = "multi_thread")]
async fn settings_belong_to_one_connection() {
    let server = Server::start();
    let first = server.connect().await;
    let second = server.connect().await;
    first
        .simple_query("SET ebiq.null_mode = 'strict_tsql'")
        .await
        .expect("a valid mode");
    first
        .simple_query("SET reports.from_month = '2025-01'")
        .await
        .expect("a month");
    let mode = |rows: Vec<Vec<Option<String>>>| rows[0].last().cloned().flatten();
    assert_eq!(
        mode(rows(&first, "SHOW ebiq.null_mode").await).as_deref(),
        Some("strict_tsql")
    );
    assert_eq!(
        mode(rows(&second, "SHOW ebiq.null_mode").await).as_deref(),
        Some("intended")
    );
    let months = "SELECT min(month) FROM reports.flagged_by_provider_month";
    assert_eq!(rows(&first, months).await[0][0].as_deref(), Some("202501"));
    assert_eq!(rows(&second, months).await[0][0].as_deref(), Some("202304"));

    let bad_mode = first.simple_query("SET ebiq.null_mode = 'lenient'").await;
    assert_eq!(sqlstate(bad_mode), SqlState::INVALID_PARAMETER_VALUE);
    let bad_month = first.simple_query("SET reports.to_month = 'March'").await;
    assert_eq!(sqlstate(bad_month), SqlState::INVALID_PARAMETER_VALUE);
}

#[tokio::test(flavor = "multi_thread")]
async fn each_kind_of_write_or_file_read_is_refused_and_nothing_changes() {
    let server = Server::start();
    let client = server.connect().await;
    let before = rows(&client, "SELECT count(*) FROM opa").await;
    let sample = common::project().join("data-samples/opa/opa_202304.parquet");
    let sample = sample.to_str().expect("utf-8 path");
    let scratch_file = scratch("serve-refused").join("out.parquet");
    let scratch_file = scratch_file.to_str().expect("utf-8 path");
    let cases = [
        (
            "CREATE EXTERNAL TABLE",
            format!("CREATE EXTERNAL TABLE other STORED AS PARQUET LOCATION '{sample}'"),
        ),
        ("COPY to a file", format!("COPY opa TO '{scratch_file}'")),
        (
            "INSERT",
            "INSERT INTO opa (opa_ident) VALUES (1)".to_owned(),
        ),
        (
            "CREATE TABLE AS",
            "CREATE TABLE copied AS SELECT * FROM opa".to_owned(),
        ),
        (
            "CREATE VIEW",
            "CREATE VIEW mine AS SELECT 1 AS one".to_owned(),
        ),
        ("DROP", "DROP TABLE opa".to_owned()),
        (
            "DROP of a report view",
            "DROP VIEW reports.headline".to_owned(),
        ),
        (
            "SET of a DataFusion option",
            "SET datafusion.execution.listing_table_ignore_subdirectory = false".to_owned(),
        ),
        (
            "a file by its path",
            format!("SELECT count(*) FROM '{sample}'"),
        ),
        (
            "a table function",
            format!("SELECT * FROM parquet_metadata('{sample}')"),
        ),
    ];
    for (kind, sql) in &cases {
        let simple = client.simple_query(sql).await;
        assert_eq!(sqlstate(simple), SqlState::INSUFFICIENT_PRIVILEGE, "{kind}");
        let extended = client.query(sql.as_str(), &[]).await;
        assert_eq!(
            sqlstate(extended),
            SqlState::INSUFFICIENT_PRIVILEGE,
            "{kind}"
        );
    }
    assert_eq!(rows(&client, "SELECT count(*) FROM opa").await, before);
    let views = rows(&client, "SELECT count(*) FROM reports.headline").await;
    assert_eq!(views.len(), 1, "the report view is still there");
    assert!(
        !std::path::Path::new(scratch_file).exists(),
        "nothing written"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_carry_postgres_sqlstate_codes() {
    let server = Server::start();
    let client = server.connect().await;
    let cases = [
        ("SELEC 1", SqlState::SYNTAX_ERROR),
        ("SELECT * FROM opa_typo", SqlState::UNDEFINED_TABLE),
        ("SELECT no_such_column FROM opa", SqlState::UNDEFINED_COLUMN),
        ("SELECT no_such_function(1)", SqlState::UNDEFINED_FUNCTION),
        (
            "COPY opa TO '/tmp/opa.csv'",
            SqlState::INSUFFICIENT_PRIVILEGE,
        ),
    ];
    for (sql, expected) in cases {
        assert_eq!(sqlstate(client.simple_query(sql).await), expected, "{sql}");
        // The same through the extended protocol, as drivers send statements.
        assert_eq!(sqlstate(client.query(sql, &[]).await), expected, "{sql}");
    }
    // The connection carries on after each error.
    assert_eq!(rows(&client, "SELECT 1").await[0][0].as_deref(), Some("1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_statement_past_the_memory_limit_is_out_of_memory_and_others_go_on() {
    let server = Server::start_with(&["--memory-limit", "1M"]);
    let client = server.connect().await;
    let other = server.connect().await;
    // A hash join's build side cannot spill: the whole sample's procedures do not fit in 1 MB.
    let join = "SELECT count(*) FROM opa a JOIN opa b ON a.der_procedure_all = b.der_procedure_all";
    assert_eq!(
        sqlstate(client.simple_query(join).await),
        SqlState::OUT_OF_MEMORY
    );
    assert_eq!(
        sqlstate(client.query(join, &[]).await),
        SqlState::OUT_OF_MEMORY
    );
    assert_eq!(rows(&client, "SELECT 1").await[0][0].as_deref(), Some("1"));
    let count = "SELECT count(*) FROM opa";
    let expected = ebiq_ok(&["sql", "--quiet", "--format", "csv", count]).stdout;
    let expected = String::from_utf8(expected).expect("utf-8");
    let served = rows(&other, count).await[0][0].clone();
    assert_eq!(served.as_deref(), expected.lines().nth(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_to_stdout_sends_csv_with_its_header() {
    let server = Server::start();
    let client = server.connect().await;
    let stream = client
        .copy_out(
            "COPY (SELECT * FROM reports.flagged_by_provider_month) TO STDOUT (FORMAT csv, HEADER)",
        )
        .await
        .expect("COPY starts");
    let chunks: Vec<_> = stream.collect().await;
    let mut text = String::new();
    for chunk in chunks {
        text.push_str(std::str::from_utf8(&chunk.expect("data")).expect("utf-8"));
    }
    let view = rows(&client, "SELECT * FROM reports.flagged_by_provider_month").await;
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("provider,month,flagged"));
    let copied: Vec<&str> = lines.collect();
    assert_eq!(copied.len(), view.len());
    for (line, row) in copied.iter().zip(&view) {
        let cells: Vec<String> = row.iter().map(|c| c.clone().unwrap_or_default()).collect();
        assert_eq!(*line, cells.join(","));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancel_request_stops_the_running_statement_and_the_connection_goes_on() {
    let server = Server::start();
    let client = server.connect().await;
    let token = client.cancel_token();
    tokio::spawn(async move {
        // Once the statement is running: its planning takes milliseconds.
        tokio::time::sleep(Duration::from_secs(2)).await;
        token
            .cancel_query(NoTls)
            .await
            .expect("the cancel request is sent");
    });
    // About 150 million pairs of appointments in the same month: still running when the cancel
    // arrives, in batches small enough that a cancel is seen between two of them (a nested-loop
    // join's batch can take longer than the bound below on a loaded machine).
    let started = std::time::Instant::now();
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        client.simple_query(
            "SELECT count(*) FROM opa a JOIN opa b ON a.der_activity_month = b.der_activity_month \
             AND a.der_provider_code <> b.der_provider_code",
        ),
    )
    .await
    .expect("the statement ends within a minute");
    assert_eq!(sqlstate(outcome), SqlState::QUERY_CANCELED);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "stopped by the cancel, not by finishing: {:?}",
        started.elapsed()
    );
    assert_eq!(rows(&client, "SELECT 1").await[0][0].as_deref(), Some("1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn struct_results_arrive_as_json_text() {
    let server = Server::start();
    let client = server.connect().await;
    let simple = rows(&client, "SELECT wilson(3, 10, 0.95) AS w").await;
    let json = simple[0][0].clone().expect("a value");
    assert!(
        json.starts_with(r#"{"value":0.3,"lower":0.10779"#) && json.contains(r#""upper":0.60322"#),
        "{json}"
    );
    // Through the extended protocol with a bound parameter, as drivers send it.
    let row = client
        .query_one(
            "SELECT wilson(CAST($1 AS BIGINT), 10, 0.95) AS w",
            &[&3_i64],
        )
        .await
        .expect("runs");
    assert_eq!(row.columns()[0].type_(), &tokio_postgres::types::Type::TEXT);
    let bound: String = row.get(0);
    assert_eq!(bound, json);
}
