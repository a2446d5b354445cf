//! The Poisson-based statistics (`rate`, `isr`, `israte`, `funnel_ratio`, `funnel_rate`,
//! `funnel_significance`) against values worked out independently of this crate by
//! `tests/reference/stats_reference.py`: scipy's chi-squared quantiles for the exact limits, the
//! published Byar formula, and PHE's rate funnel points found by root-finding scipy's Poisson tail
//! sums (not a gamma quantile), at PHE's edges (0 events, fewer than 10, exactly 10, NULLs).

use datafusion::arrow::array::AsArray;
use datafusion::error::Result;
use datafusion::prelude::{SessionConfig, SessionContext};
use ebiq_udfs::{rate_funnel_limits, rate_interval, ratio_funnel_limits};

use super::{close_within as close, float_column, rows, session_with};

fn session(partitions: usize) -> SessionContext {
    session_with(SessionConfig::new().with_target_partitions(partitions))
}

/// Every value of the named Float64 columns, row by row.
async fn floats(ctx: &SessionContext, sql: &str, names: &[&str]) -> Result<Vec<Vec<Option<f64>>>> {
    let batches = rows(ctx, sql).await?;
    let columns: Vec<Vec<Option<f64>>> = names
        .iter()
        .map(|name| float_column(&batches, name))
        .collect();
    let height = columns.first().map_or(0, Vec::len);
    Ok((0..height)
        .map(|row| columns.iter().map(|column| column[row]).collect())
        .collect())
}

#[test]
fn rates_agree_with_scipy_and_byar() -> Result<()> {
    // (x, n, confidence, value, lower, upper) per 100,000: exact below 10, Byar from 10.
    let cases = [
        (0.0, 1000.0, 0.95, 0.0, 0.0, 368.8879454113935),
        (0.0, 1000.0, 0.998, 0.0, 0.0, 690.7755278982137),
        (
            1.0,
            1000.0,
            0.95,
            100.0,
            2.53178079842899,
            557.1643390938898,
        ),
        (
            1.0,
            1000.0,
            0.998,
            100.0,
            0.10005003335835345,
            923.3413476451584,
        ),
        (
            9.0,
            5000.0,
            0.95,
            180.0,
            82.30746194756668,
            341.6960690283833,
        ),
        (
            9.0,
            5000.0,
            0.998,
            180.0,
            49.048488087275494,
            453.1474661812586,
        ),
        (
            10.0,
            5000.0,
            0.95,
            200.0,
            95.74899827935126,
            367.8291721151295,
        ),
        (
            10.0,
            5000.0,
            0.998,
            200.0,
            58.32636749391372,
            483.874498557611,
        ),
        (
            389.0,
            123456.0,
            0.95,
            315.0920165889062,
            284.55343734284673,
            348.01479006445004,
        ),
        (
            389.0,
            123456.0,
            0.998,
            315.0920165889062,
            268.01412670308747,
            367.6587675218139,
        ),
    ];
    for (x, n, level, value, lower, upper) in cases {
        let what = format!("rate({x}, {n}, {level})");
        let [v, l, u] = rate_interval(x, n, level, 100_000.0)?.expect("a rate");
        close(v, value, 1e-12, &what);
        close(l, lower, 1e-9, &what);
        close(u, upper, 1e-9, &what);
    }
    assert_eq!(rate_interval(5.0, 0.0, 0.95, 100_000.0)?, None);
    assert!(rate_interval(-1.0, 10.0, 0.95, 100_000.0).is_err());
    assert!(rate_interval(1.0, -10.0, 0.95, 100_000.0).is_err());
    Ok(())
}

#[test]
fn ratio_funnels_agree_with_scipy() -> Result<()> {
    // (expected, confidence, lower, upper): qchisq(a/2, 2E)/2/E and qchisq(1-a/2, 2E+2)/2/E.
    let cases = [
        (0.5, 0.95, 0.0009820691171752583, 9.348403604496148),
        (0.5, 0.998, 1.570797149262492e-06, 16.26623619623813),
        (3.0, 0.95, 0.2062240409652005, 2.9224243565807746),
        (3.0, 0.998, 0.06351112585613443, 4.354080259729357),
        (12.5, 0.95, 0.5247888009975117, 1.7277804386462414),
        (12.5, 0.998, 0.34597374513531887, 2.219040808229808),
        (250.0, 0.95, 0.8798719825237492, 1.1319508201692643),
        (250.0, 0.998, 0.8158939214919985, 1.2112824222061032),
    ];
    for (expected, level, lower, upper) in cases {
        let what = format!("funnel_ratio({expected}, {level})");
        let [l, u] = ratio_funnel_limits(expected, level)?.expect("limits");
        close(l, lower, 1e-8, &what);
        close(u, upper, 1e-8, &what);
    }
    assert_eq!(ratio_funnel_limits(0.0, 0.95)?, None);
    Ok(())
}

#[test]
fn rate_funnels_pass_through_phes_points_found_from_poisson_tail_sums() {
    // (events, confidence, (n, upper), (n, lower)) around an average of 0.0045.
    let cases = [
        (
            3,
            0.95,
            (137.48269397680033, 0.0218209282435667),
            (1948.2829043871834, 0.0015398174429619735),
        ),
        (
            3,
            0.998,
            (42.34075057075627, 0.07085372742711904),
            (2902.7201731529053, 0.001033513332682506),
        ),
        (
            40,
            0.95,
            (6350.352542619755, 0.006298862894861979),
            (12104.14376977424, 0.0033046534113289087),
        ),
        (
            40,
            0.998,
            (5168.875103240891, 0.0077386276899822845),
            (14147.155177035347, 0.002827423570282936),
        ),
        (
            500,
            0.95,
            (101584.12819991767, 0.004922028754492035),
            (121290.94857003809, 0.004122319149901616),
        ),
        (
            500,
            0.998,
            (96386.56473414185, 0.00518744496579087),
            (127339.46739044378, 0.0039265124179208135),
        ),
    ];
    let average = 0.0045;
    for (events, level, (n_upper, upper), (n_lower, lower)) in cases {
        let what = format!("{events} events at {level}");
        let [_, u] = rate_funnel_limits(average * n_upper, level).expect("limits");
        close(u * average, upper, 1e-8, &what);
        let [l, _] = rate_funnel_limits(average * n_lower, level).expect("limits");
        close(l * average, lower, 1e-8, &what);
    }
    // Below the expected count at which no events is the 95% upper limit (-ln 0.025), the lower
    // limit is 0.
    let [lower, upper] = rate_funnel_limits(1.0, 0.95).expect("limits");
    assert_eq!(lower, 0.0);
    assert!(upper > 1.0);
}

#[tokio::test]
async fn rate_and_funnels_through_sql_with_nulls() -> Result<()> {
    let ctx = session(1);
    let table = floats(
        &ctx,
        "SELECT rate(x, n, 95, 100000)['lower'] AS lower, \
                funnel_ratio(e, 0.998)['upper'] AS ratio_upper, \
                funnel_rate(450, n, 0.95, 100000)['upper'] AS rate_upper \
         FROM (VALUES (CAST(1 AS INT), CAST(1000 AS BIGINT), 3.0), \
                      (NULL, 1000, NULL), (1, 0, 0.0)) AS t(x, n, e)",
        &["lower", "ratio_upper", "rate_upper"],
    )
    .await?;
    close(table[0][0].expect("a rate"), 2.53178079842899, 1e-9, "rate");
    close(
        table[0][1].expect("a limit"),
        4.354080259729357,
        1e-8,
        "ratio",
    );
    assert!(table[0][2].expect("a limit") > 450.0);
    assert_eq!(
        table[1][..2],
        [None, None],
        "NULL events and expected give NULL"
    );
    assert_eq!(
        table[2],
        [None, None, None],
        "no population, no expected count: NULL"
    );
    let error = rows(&ctx, "SELECT rate(-1, 10, 0.95, 100000)")
        .await
        .expect_err("negative");
    assert!(error.to_string().contains("-1"), "{error}");
    Ok(())
}

#[tokio::test]
async fn isr_and_israte_of_a_two_band_example_on_any_partitioning() -> Result<()> {
    for partitions in [1, 4] {
        let ctx = session(partitions);
        rows(
            &ctx,
            "CREATE TABLE bands (provider TEXT, observed INT, people BIGINT, ref_count INT, \
             ref_people INT) AS VALUES \
             ('A', 4, 1000, 20, 10000), ('A', 9, 3000, 120, 30000), \
             ('B', 1, 2000, 20, 10000), ('B', 2, 3000, 120, 30000), ('B', NULL, 0, 0, 10)",
        )
        .await?;
        let ratio = floats(
            &ctx,
            "SELECT provider, isr(observed, people, ref_count / CAST(ref_people AS DOUBLE), c)['observed'] AS observed, \
                    isr(observed, people, ref_count / CAST(ref_people AS DOUBLE), c)['expected'] AS expected, \
                    isr(observed, people, ref_count / CAST(ref_people AS DOUBLE), c)['ratio'] AS ratio, \
                    isr(observed, people, ref_count / CAST(ref_people AS DOUBLE), c)['lower'] AS lower, \
                    isr(observed, people, ref_count / CAST(ref_people AS DOUBLE), c)['upper'] AS upper \
             FROM bands CROSS JOIN (VALUES (0.998)) AS levels(c) GROUP BY provider ORDER BY provider",
            &["observed", "expected", "ratio", "lower", "upper"],
        )
        .await?;
        let expect = |row: &[Option<f64>], values: [f64; 5], what: &str| {
            for (actual, expected) in row.iter().zip(values) {
                close(actual.expect("a value"), expected, 1e-9, what);
            }
        };
        // A: 13 events against 14 expected, Byar's limits; B: 3 against 16, exact limits.
        expect(
            &ratio[0],
            [
                13.0,
                14.0,
                0.9285714285714286,
                0.3264285415627669,
                2.0356511088067375,
            ],
            "A",
        );
        assert_eq!(ratio[1][0], Some(3.0), "B's NULL count is left out");
        close(ratio[1][1].expect("expected"), 16.0, 1e-12, "B expected");
        let rate = floats(
            &ctx,
            "SELECT israte(observed, people, ref_count, ref_people, 0.95, 100000)['reference_rate'] AS reference, \
                    israte(observed, people, ref_count, ref_people, 0.95, 100000)['rate'] AS rate, \
                    israte(observed, people, ref_count, ref_people, 0.95, 100000)['lower'] AS lower, \
                    israte(observed, people, ref_count, ref_people, 0.95, 100000)['upper'] AS upper \
             FROM bands WHERE provider = 'A'",
            &["reference", "rate", "lower", "upper"],
        )
        .await?;
        for (actual, expected) in
            rate[0]
                .iter()
                .zip([350.0, 325.0, 172.8810236165155, 555.7931752362732])
        {
            close(actual.expect("a value"), expected, 1e-9, "israte A");
        }
    }
    Ok(())
}

#[tokio::test]
async fn isr_of_few_events_uses_exact_limits_and_nothing_expected_is_null() -> Result<()> {
    let ctx = session(1);
    let table = floats(
        &ctx,
        "SELECT isr(o, p, r, 0.95)['lower'] AS lower, isr(o, p, r, 0.95)['upper'] AS upper, \
                isr(o, p, r, 0.95)['ratio'] AS ratio \
         FROM (VALUES ('x', 3, 1400, 0.01), ('y', 2, 0, 0.01)) AS t(g, o, p, r) GROUP BY g ORDER BY g",
        &["lower", "upper", "ratio"],
    )
    .await?;
    close(
        table[0][0].expect("lower"),
        0.04419086592111439,
        1e-9,
        "3 of 14 lower",
    );
    close(
        table[0][1].expect("upper"),
        0.6262337906958803,
        1e-9,
        "3 of 14 upper",
    );
    assert_eq!(table[1], [None, None, None], "expected 0: no ratio");
    let error = rows(&ctx, "SELECT isr(-2, 10, 0.1, 0.95) FROM (VALUES (1))")
        .await
        .expect_err("a negative count");
    assert!(error.to_string().contains("-2"), "{error}");
    let error = rows(
        &ctx,
        "SELECT isr(o, 10, 0.1, c) FROM (VALUES (1, 0.95), (2, 0.998)) AS t(o, c)",
    )
    .await
    .expect_err("two confidence levels in one call");
    assert!(error.to_string().contains("confidence"), "{error}");
    Ok(())
}

#[tokio::test]
async fn significance_in_phes_words() -> Result<()> {
    let ctx = session(1);
    let batches = rows(
        &ctx,
        "SELECT funnel_significance(o, e, 1) AS label FROM (VALUES \
           (1, 1, 0), (30, 10, 1), (30, 18, 2), (3, 14, 3), (13, 14, 4), (0, 8, 5), (4, 0, 6), \
           (NULL, 5, 7)) AS t(o, e, k) ORDER BY k",
    )
    .await?;
    let labels: Vec<Option<String>> = batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_string::<i32>()
                .iter()
                .map(|v| v.map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect();
    // 30 of 10 expected: Byar's 99.8% lower limit 15.8 > 10; 30 of 18: 95% lower 20.2 > 18 but
    // 99.8% lower 15.8 < 18; 3 of 14: 95% upper 8.77 < 14, 99.8% upper 13.06 < 14; 0 of 8: the
    // 99.8% upper -ln(0.001) = 6.9 < 8.
    let expected = [
        Some("Not significant"),
        Some("High (0.001)"),
        Some("High (0.025)"),
        Some("Low (0.001)"),
        Some("Not significant"),
        Some("Low (0.001)"),
        None,
        None,
    ];
    assert_eq!(
        labels,
        expected.map(|label| label.map(str::to_owned)).to_vec()
    );
    Ok(())
}
