//! The provider-by-month report on a Ballista cluster of `ebiq` processes on loopback: a scheduler
//! and two executors started by the test, stopped by it whatever happens, and the cluster's answer
//! compared with the local run's, directly and through `ebiq serve --cluster`.

mod common;

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::server::{Server, rows, same_cell};
use common::{ebiq_ok as ebiq, project, scratch};

/// Child processes killed when the test ends, passed or failed.
struct Cluster(Vec<Child>);

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("a loopback port")
        .local_addr()
        .expect("a bound address")
        .port()
}

fn start(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ebiq"))
        .args(args)
        .current_dir(project())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the process starts")
}

fn wait_for_port(port: u16, cluster: &mut Cluster) {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        for child in &mut cluster.0 {
            assert!(
                child
                    .try_wait()
                    .expect("the process can be polled")
                    .is_none(),
                "a cluster process exited"
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "port {port} never opened"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_cluster_answers_as_the_local_run_does() {
    let scheduler = free_port();
    let scheduler_arg = format!("127.0.0.1:{scheduler}");
    let mut cluster = Cluster(vec![start(&["scheduler", "--bind", &scheduler_arg])]);
    wait_for_port(scheduler, &mut cluster);
    // Killed executors leave their shuffle files behind: put them where the test removes them.
    let shuffles = scratch("cluster");
    for executor in 0..2 {
        let (flight, grpc) = (free_port(), free_port());
        let work_dir = shuffles.join(executor.to_string());
        std::fs::create_dir_all(&work_dir).expect("a scratch folder");
        cluster.0.push(start(&[
            "executor",
            "--scheduler",
            &scheduler_arg,
            "--port",
            &flight.to_string(),
            "--grpc-port",
            &grpc.to_string(),
            "--cores",
            "1",
            "--work-dir",
            work_dir.to_str().expect("a UTF-8 path"),
        ]));
        wait_for_port(flight, &mut cluster);
    }

    let local = ebiq(&["report", "--quiet", "--format", "csv"]);
    let url = format!("df://{scheduler_arg}");
    let remote = ebiq(&["report", "--quiet", "--format", "csv", "--cluster", &url]);
    let (local, remote) = (
        String::from_utf8(local.stdout).expect("UTF-8 output"),
        String::from_utf8(remote.stdout).expect("UTF-8 output"),
    );
    assert!(local.starts_with("provider,month,flagged\n"));
    assert_eq!(remote, local);

    // A setting made on the client reaches the executors' rule functions.
    let strict = |cluster_args: &[&str]| {
        let sql = "SELECT count(*) AS n FROM opa WHERE ebi_lower_back_imaging(der_procedure_all, \
                   age_at_start_of_episode_sus, der_age_at_cds_activity_date, der_diagnosis_all, \
                   administrative_category) IS NOT NULL";
        let args = [
            &["sql", "--format", "csv", "--null-mode", "strict_tsql", sql][..],
            cluster_args,
        ]
        .concat();
        String::from_utf8(ebiq(&args).stdout).expect("UTF-8 output")
    };
    assert_eq!(strict(&["--cluster", &url]), strict(&[]));

    // The statistics the report's queries do not call (its queries 10 and 11 call isr,
    // overdispersion, funnel_ratio_od, funnel_rate and funnel_significance), on the executors:
    // xmr with every option, dsr_events and israte over each provider's flagged appointments per
    // month (as "persons with that many events" for dsr_events), funnel_ratio_od's CQC limits, rate
    // and funnel_ratio.
    // One statement each: on these one-slot executors Ballista 55 never finishes a UNION ALL of a
    // constant row and a grouping (docs/cluster.md).
    let monthly = "WITH monthly AS (
            SELECT der_provider_code AS provider, der_activity_month AS month, count(*) AS n
            FROM opa WHERE ebi_lower_back_imaging(der_procedure_all, \
                age_at_start_of_episode_sus, der_age_at_cds_activity_date, der_diagnosis_all, \
                administrative_category) IS NOT NULL
            GROUP BY 1, 2) ";
    for statistic in [
        "SELECT provider, month, round(x['mean'], 6) AS mean, round(x['upl'], 6) AS upl,
                x['special_cause'] AS cause, x['variation_icon'] AS icon
         FROM (SELECT provider, month, xmr(n, 'neutral', 5, month = '202407', 4, false)
                   OVER (PARTITION BY provider ORDER BY month) AS x
               FROM monthly)
         ORDER BY provider, month",
        "SELECT round(d['value'], 6) AS value, round(d['upper'], 6) AS upper
         FROM (SELECT dsr_events(persons, frequency, band, 1000, 500, 0.95, 100000) AS d
               FROM (SELECT left(month, 4) AS band, n AS frequency, count(*) AS persons
                     FROM monthly GROUP BY 1, 2))",
        "SELECT round(i['rate'], 6) AS rate, round(i['upper'], 6) AS upper
         FROM (SELECT israte(n, 1000, 30, 1000, 0.95, 100000) AS i FROM monthly)",
        "SELECT n, round(f['lower'], 6) AS lower, round(f['upper'], 6) AS upper
         FROM (SELECT n, funnel_ratio_od(CAST(n AS DOUBLE), 0.95, 'CQC', 2.0, 0.01) AS f
               FROM monthly)
         ORDER BY n",
        "SELECT n, round(r['lower'], 6) AS rate_lower, round(f['upper'], 6) AS ratio_upper
         FROM (SELECT n, rate(n, 1000, 0.95, 100000) AS r,
                      funnel_ratio(CAST(n AS DOUBLE), 0.998) AS f
               FROM monthly)
         ORDER BY n",
    ] {
        let sql = format!("{monthly}{statistic}");
        let run = |cluster_args: &[&str]| {
            let args = [&["sql", "--format", "csv", sql.as_str()][..], cluster_args].concat();
            String::from_utf8(ebiq(&args).stdout).expect("UTF-8 output")
        };
        let here = run(&[]);
        assert!(here.lines().count() >= 2, "{here}");
        assert!(
            !here.lines().nth(1).is_some_and(|l| l.starts_with(',')),
            "{here}"
        );
        assert_eq!(run(&["--cluster", &url]), here, "{statistic}");
    }

    // The same cluster behind `ebiq serve`, read through a PostgreSQL client: the report views
    // equal the local server's, the catalogue answers from the server's own process, and a
    // statement that joins the two is refused rather than half-run.
    let runtime = tokio::runtime::Runtime::new().expect("a valid value");
    runtime.block_on(async {
        let server = Server::start_with(&["--cluster", &url]);
        let client = server.connect().await;
        // Each report view as the local server (whose views equal the report's CSVs, tested in
        // tests/serve.rs) gives it.
        let local_server = Server::start();
        let local_client = local_server.connect().await;
        for view in [
            "flagged_by_provider_month",
            "standardised_rates_by_commissioner",
        ] {
            let sql = format!("SELECT * FROM reports.{view}");
            let mut on_cluster = rows(&client, &sql).await;
            let mut here = rows(&local_client, &sql).await;
            on_cluster.sort();
            here.sort();
            assert!(!here.is_empty(), "{view} has rows");
            assert_eq!(on_cluster.len(), here.len(), "{view}");
            for (remote, local) in on_cluster.iter().zip(&here) {
                // Sums over differently split partitions may differ in the last bits.
                let same = remote.len() == local.len()
                    && remote
                        .iter()
                        .zip(local)
                        .all(|(r, l)| same_cell(r.as_deref(), l.as_deref().unwrap_or("")));
                assert!(same, "{view}: cluster {remote:?}, local {local:?}");
            }
        }

        let tables = rows(
            &client,
            "SELECT relname FROM pg_catalog.pg_class WHERE relname = 'opa'",
        )
        .await;
        assert_eq!(tables, [[Some("opa".to_owned())]]);

        let mixed = client
            .simple_query(
                "SELECT count(*) FROM opa JOIN pg_catalog.pg_class c \
                 ON c.relname = opa.der_provider_code",
            )
            .await
            .expect_err("refused");
        assert_eq!(
            mixed.code(),
            Some(&tokio_postgres::error::SqlState::FEATURE_NOT_SUPPORTED),
            "{mixed}"
        );
    });
}
