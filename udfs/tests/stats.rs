//! The statistics functions against values worked out independently of this crate
//! (`tests/reference/stats_reference.py`: statsmodels' Wilson interval, scipy's normal quantile,
//! exact fractions for the DSR example, bisection for funnel limits), through SQL in every numeric
//! type, and at their edges.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::Float64Type;
use datafusion::error::Result;
use datafusion::prelude::{SessionConfig, SessionContext};
use ebiq_udfs::{
    EbiqOptions, Improvement, SpecialCause, XmrPoint, XmrSettings, byar_interval, funnel_limits,
    register_all, wilson_interval, z_score,
};
use proptest::prelude::*;

#[path = "stats/dispersion.rs"]
mod dispersion;
#[path = "stats/dsr_events.rs"]
mod dsr_events;
#[path = "stats/poisson.rs"]
mod poisson;
#[path = "stats/xmr.rs"]
mod xmr;

fn close(actual: f64, expected: f64, what: &str) {
    close_within(actual, expected, 1e-9, what);
}

/// `actual` within `relative` of `expected` (absolutely, for expected values near 0).
fn close_within(actual: f64, expected: f64, relative: f64, what: &str) {
    let tolerance = relative * expected.abs().max(1e-6);
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: {actual} != {expected}"
    );
}

#[test]
fn wilson_agrees_with_statsmodels() {
    // (x, n, confidence, value, lower, upper) from proportion_confint(method="wilson").
    let cases = [
        (
            65.0,
            100.0,
            0.95,
            0.65,
            0.5525444329688796,
            0.7363575175690247,
        ),
        (
            65.0,
            100.0,
            0.998,
            0.65,
            0.4954946574070448,
            0.7783540614089687,
        ),
        (0.0, 50.0, 0.95, 0.0, 0.0, 0.07134759913335872),
        (0.0, 50.0, 0.998, 0.0, 0.0, 0.160362891042788),
        (50.0, 50.0, 0.95, 1.0, 0.9286524008666414, 1.0),
        (50.0, 50.0, 0.998, 1.0, 0.839637108957212, 1.0),
        (
            1.0,
            3.0,
            0.95,
            1.0 / 3.0,
            0.06149194472039621,
            0.7923403991979522,
        ),
        (
            1.0,
            3.0,
            0.998,
            1.0 / 3.0,
            0.029827928198891462,
            0.8904878489405558,
        ),
        (
            1234.0,
            56789.0,
            0.95,
            0.021729560302171196,
            0.020562371863068946,
            0.022961449015183377,
        ),
        (
            1234.0,
            56789.0,
            0.998,
            0.021729560302171196,
            0.019917759211971524,
            0.02370218453586285,
        ),
    ];
    for (x, n, confidence, value, lower, upper) in cases {
        let what = format!("wilson({x}, {n}, {confidence})");
        let [v, l, u] = wilson_interval(x, n, z_score(confidence).expect("a valid confidence"))
            .expect("an interval")
            .expect("a value");
        close(v, value, &what);
        close(l, lower, &what);
        close(u, upper, &what);
    }
    assert_eq!(
        wilson_interval(0.0, 0.0, 1.96).expect("an interval"),
        None,
        "n = 0 has no proportion"
    );
    assert!(wilson_interval(5.0, 4.0, 1.96).is_err(), "x > n");
    assert!(wilson_interval(-1.0, 4.0, 1.96).is_err(), "x < 0");
}

#[test]
fn byar_agrees_with_the_published_formula() {
    let cases = [
        (0.0, 0.95, 0.0, 3.6680118321737507),
        (0.0, 0.998, 0.0, 7.066462526829025),
        (1.0, 0.95, 0.013072132901504331, 5.5637555824752605),
        // The formula's own value, below zero, as R's byars_lower gives it.
        (1.0, 0.998, -0.002814481523183207, 9.362180217908362),
        (9.0, 0.95, 4.106885024013133, 17.085780688536683),
        (65.0, 0.95, 50.16318771045943, 82.84913854593984),
        (65.0, 0.998, 42.8802614714802, 94.000290844318),
        (389.0, 0.95, 351.29829160598484, 429.64513922196744),
        (12345.0, 0.998, 12004.4964605369, 12692.217084633961),
    ];
    for (o, confidence, lower, upper) in cases {
        let what = format!("byar({o}, {confidence})");
        let [l, u] = byar_interval(o, z_score(confidence).expect("a valid confidence"))
            .expect("an interval");
        close(l, lower, &what);
        close(u, upper, &what);
    }
    assert!(byar_interval(-1.0, 1.96).is_err());
}

#[test]
fn funnel_limits_agree_with_their_definition_found_by_bisection() {
    let cases = [
        (0.12, 50.0, 0.95, 0.02992691284681092, 0.21007308715318912),
        (0.12, 50.0, 0.998, 0.0, 0.2620162646010935),
        (0.12, 1000.0, 0.95, 0.0998590454182206, 0.14014095458177933),
        (0.12, 1000.0, 0.998, 0.08824419784413579, 0.1517558021558642),
        (0.5, 7.0, 0.95, 0.1296016227331266, 0.8703983772668733),
        (0.5, 7.0, 0.998, 0.0, 1.0),
        (
            0.03,
            20000.0,
            0.95,
            0.027635825179029697,
            0.0323641748209703,
        ),
        (
            0.03,
            20000.0,
            0.998,
            0.02627245731716575,
            0.03372754268283425,
        ),
    ];
    for (baseline, n, confidence, lower, upper) in cases {
        let what = format!("funnel_proportion({baseline}, {n}, {confidence})");
        let [l, u] = funnel_limits(
            baseline,
            n,
            z_score(confidence).expect("a valid confidence"),
        )
        .expect("valid limits")
        .expect("a value");
        // Bisection converges to about 1e-16 absolute; near 0 compare absolutely.
        assert!(
            (l - lower).abs() <= 1e-9 * lower.max(1e-3),
            "{what} lower: {l} != {lower}"
        );
        assert!(
            (u - upper).abs() <= 1e-9 * upper.max(1e-3),
            "{what} upper: {u} != {upper}"
        );
    }
    assert_eq!(funnel_limits(0.1, 0.0, 1.96).expect("valid limits"), None);
    assert!(funnel_limits(1.5, 10.0, 1.96).is_err());
}

proptest! {
    /// A funnel limit is the proportion whose Wilson interval at n just reaches the baseline.
    #[test]
    fn a_funnel_limit_s_wilson_interval_reaches_the_baseline(
        baseline in 0.01f64..0.99,
        n in 20.0f64..1e6,
        confidence in prop::sample::select(vec![0.95, 0.998]),
    ) {
        let z = z_score(confidence).expect("a valid confidence");
        let [lower, upper] = funnel_limits(baseline, n, z).expect("valid limits").expect("a value");
        if lower > 0.0 {
            let [_, _, reach] = wilson_interval(lower * n, n, z).expect("an interval").expect("a value");
            prop_assert!((reach - baseline).abs() < 1e-9, "{} vs {}", reach, baseline);
        }
        if upper < 1.0 {
            let [_, reach, _] = wilson_interval(upper * n, n, z).expect("an interval").expect("a value");
            prop_assert!((reach - baseline).abs() < 1e-9, "{} vs {}", reach, baseline);
        }
        prop_assert!(lower <= baseline && baseline <= upper);
    }
}

fn session() -> SessionContext {
    session_with(SessionConfig::new())
}

/// A session on `config` with the functions and `esp2013` registered.
fn session_with(config: SessionConfig) -> SessionContext {
    let config = config.with_option_extension(EbiqOptions::default());
    let mut ctx = SessionContext::new_with_config(config);
    register_all(&mut ctx).expect("the functions register");
    ctx.register_batch(
        "esp2013",
        ebiq_udfs::esp2013().expect("the standard population"),
    )
    .expect("the table registers");
    ctx
}

async fn rows(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    ctx.sql(sql).await?.collect().await
}

fn float_column(batches: &[RecordBatch], name: &str) -> Vec<Option<f64>> {
    batches
        .iter()
        .flat_map(|b| {
            b.column_by_name(name)
                .expect("the column is in the result")
                .as_primitive::<Float64Type>()
                .iter()
                .collect::<Vec<_>>()
        })
        .collect()
}

const NUMERIC_TYPES: [&str; 11] = [
    "TINYINT",
    "SMALLINT",
    "INT",
    "BIGINT",
    "TINYINT UNSIGNED",
    "SMALLINT UNSIGNED",
    "INT UNSIGNED",
    "BIGINT UNSIGNED",
    "FLOAT",
    "DOUBLE",
    "DECIMAL(10, 2)",
];

#[tokio::test]
async fn every_numeric_type_gives_the_same_answer() -> Result<()> {
    let ctx = session();
    for ty in NUMERIC_TYPES {
        let sql = format!(
            "SELECT wilson(CAST(65 AS {ty}), CAST(100 AS {ty}), 0.95)['lower'] AS w, \
                    byar(CAST(65 AS {ty}), 95)['upper'] AS b, \
                    funnel_proportion(0.12, CAST(100 AS {ty}), 0.998)['upper'] AS f, \
                    esp_age_band(CAST(37 AS {ty})) AS band"
        );
        let batches = rows(&ctx, &sql).await?;
        close(
            float_column(&batches, "w")[0].expect("a value"),
            0.5525444329688796,
            ty,
        );
        close(
            float_column(&batches, "b")[0].expect("a value"),
            82.84913854593984,
            ty,
        );
        let expected = funnel_limits(0.12, 100.0, z_score(0.998)?)?.expect("a value")[1];
        close(
            float_column(&batches, "f")[0].expect("a value"),
            expected,
            ty,
        );
        let band = batches[0]
            .column_by_name("band")
            .expect("the column is in the result")
            .as_string::<i32>()
            .value(0)
            .to_owned();
        assert_eq!(band, "35-39", "{ty}");
    }
    Ok(())
}

#[tokio::test]
async fn the_aggregate_and_window_take_every_numeric_type() -> Result<()> {
    let ctx = session();
    for ty in NUMERIC_TYPES {
        let sql = format!(
            "SELECT dsr(CAST(events AS {ty}), CAST(people AS {ty}), CAST(standard AS {ty}), 0.95, 100000)['value'] AS d \
             FROM (VALUES (12, 100, 60), (30, 75, 40)) AS t(events, people, standard)"
        );
        let batches = rows(&ctx, &sql).await?;
        // (12·60/100 + 30·40/75) / 100 = 0.232 per person (every value fits a TINYINT).
        close(
            float_column(&batches, "d")[0].expect("a value"),
            23200.0,
            ty,
        );
        let sql = format!(
            "SELECT xmr(CAST(v AS {ty}), 'increase') OVER (ORDER BY m)['upl'] AS upl \
             FROM (VALUES (1, 10), (2, 12), (3, 10), (4, 12), (5, 10)) AS t(m, v)"
        );
        let batches = rows(&ctx, &sql).await?;
        close(
            float_column(&batches, "upl")[0].expect("a value"),
            10.8 + 2.66 * 2.0,
            ty,
        );
    }
    Ok(())
}

#[tokio::test]
async fn nulls_and_empty_denominators_give_null_and_impossible_values_are_errors() -> Result<()> {
    let ctx = session();
    let batches = rows(
        &ctx,
        "SELECT wilson(NULL, 10, 0.95)['value'] AS a, wilson(0, 0, 0.95)['value'] AS b, \
                byar(NULL, 0.95)['lower'] AS c, funnel_proportion(0.1, 0, 0.95)['lower'] AS d, \
                esp_age_band(999) AS e, esp_age_band(7003) AS f",
    )
    .await?;
    for name in ["a", "b", "c", "d"] {
        assert_eq!(float_column(&batches, name), [None], "{name}");
    }
    assert!(
        batches[0]
            .column_by_name("e")
            .expect("the column is in the result")
            .is_null(0)
    );
    assert_eq!(
        batches[0]
            .column_by_name("f")
            .expect("the column is in the result")
            .as_string::<i32>()
            .value(0),
        "0-4"
    );
    for bad in [
        "SELECT wilson(11, 10, 0.95)",
        "SELECT wilson(1, 10, 0.5)",
        "SELECT byar(-1, 0.95)",
        "SELECT funnel_proportion(2, 10, 0.95)",
        "SELECT esp_age_band('old')",
    ] {
        let error = rows(&ctx, bad).await.expect_err("refused").to_string();
        assert!(!error.is_empty(), "{bad}");
    }
    let error = rows(&ctx, "SELECT wilson(1, 10, 0.5)")
        .await
        .expect_err("refused")
        .to_string();
    assert!(error.contains("confidence 0.5"), "{error}");
    Ok(())
}

/// Two areas, two age bands each (standard populations 6000 and 4000). Area A:
/// 12 events in 2000 people and 30 in 1500. DSR = (12·6000/2000 + 30·4000/1500) / 10000
/// = (36 + 80) / 10000 = 0.0116, 1160 per 100,000. var = (12·3² + 30·(8/3)²) / 10000²
/// = (108 + 213.33...) / 1e8 = 241/75,000,000. O = 42, Byar(42) at 95%, Dobson:
/// 1160 + sqrt(var/42)·1e5·(O_lower - 42) = 835.4565988505623 (worked in
/// stats_reference.py with exact fractions). Area B has 3 + 6 = 9 events: below 10, no DSR.
#[tokio::test]
async fn the_dsr_of_a_hand_worked_two_area_example() -> Result<()> {
    let ctx = session();
    rows(
        &ctx,
        "CREATE TABLE bands (area TEXT, events BIGINT, people INT, standard INT) AS VALUES \
         ('A', 12, 2000, 6000), ('A', 30, 1500, 4000), ('B', 3, 4000, 6000), ('B', 6, 1000, 4000)",
    )
    .await?;
    let batches = rows(
        &ctx,
        "SELECT area, dsr(events, people, standard, 0.95, 100000)['value'] AS value, \
                dsr(events, people, standard, 0.95, 100000)['lower'] AS lower95, \
                dsr(events, people, standard, 0.95, 100000)['upper'] AS upper95, \
                dsr(events, people, standard, 99.8, 100000)['lower'] AS lower998, \
                dsr(events, people, standard, 99.8, 100000)['upper'] AS upper998 \
         FROM bands GROUP BY area ORDER BY area",
    )
    .await?;
    let column = |name| float_column(&batches, name);
    close(column("value")[0].expect("a value"), 1160.0, "value");
    close(
        column("lower95")[0].expect("a value"),
        835.4565988505623,
        "lower 95%",
    );
    close(
        column("upper95")[0].expect("a value"),
        1568.6287890258427,
        "upper 95%",
    );
    close(
        column("lower998")[0].expect("a value"),
        682.9325394501819,
        "lower 99.8%",
    );
    close(
        column("upper998")[0].expect("a value"),
        1828.5045002760758,
        "upper 99.8%",
    );
    for name in ["value", "lower95", "upper95"] {
        assert_eq!(column(name)[1], None, "area B: 9 events, no DSR ({name})");
    }
    // Spread over partitions, the partial sums merge to the same answer.
    let ctx = session_with(SessionConfig::new().with_target_partitions(4));
    rows(&ctx, "CREATE TABLE bands (area TEXT, events BIGINT, people INT, standard INT) AS VALUES ('A', 12, 2000, 6000), ('A', 30, 1500, 4000)").await?;
    let batches = rows(
        &ctx,
        "SELECT dsr(events, people, standard, 0.95, 100000)['value'] AS value FROM \
         (SELECT * FROM bands UNION ALL SELECT 'A', 0, 100, 0 FROM bands WHERE false)",
    )
    .await?;
    close(
        float_column(&batches, "value")[0].expect("a value"),
        1160.0,
        "merged",
    );
    Ok(())
}

#[tokio::test]
async fn a_band_without_population_cannot_be_standardised() -> Result<()> {
    let ctx = session();
    let batches = rows(
        &ctx,
        "SELECT dsr(events, people, 5000, 0.95, 100000)['value'] AS value FROM \
         (VALUES (20, 1000), (30, CAST(NULL AS INT))) AS t(events, people)",
    )
    .await?;
    assert_eq!(float_column(&batches, "value"), [None]);
    Ok(())
}

/// The XmR chart of `values` with Making Data Count's defaults.
fn xmr_chart(values: &[f64], increase: bool) -> Vec<XmrPoint> {
    let improvement = if increase {
        Improvement::Increase
    } else {
        Improvement::Decrease
    };
    ebiq_udfs::xmr_chart(values, XmrSettings::new(improvement))
}

fn causes(values: &[f64], increase: bool) -> Vec<Option<SpecialCause>> {
    xmr_chart(values, increase)
        .iter()
        .map(|p| p.special_cause)
        .collect()
}

#[test]
fn xmr_limits_are_worked_by_hand() {
    // Moving ranges 2, 2, 2, 2: average 2; limits 10 ± 5.32. Nothing special.
    let points = xmr_chart(&[10.0, 12.0, 10.0, 12.0, 6.0 + 4.0], true);
    let mean = 54.0 / 5.0;
    // Ranges 2, 2, 2, 2 -> amr 2.
    close(points[0].mean, mean, "mean");
    close(points[0].lpl, mean - 2.66 * 2.0, "lpl");
    close(points[0].upl, mean + 2.66 * 2.0, "upl");
    assert!(points.iter().all(|p| p.special_cause.is_none()));
}

#[test]
fn xmr_screens_large_moving_ranges_before_setting_limits() {
    // Ranges: 1 x 10, then 40 and 40 around the spike. Average 80/12 = 6.67; 3.267 x 6.67 = 21.8,
    // so both 40s are screened and the average moving range is 1.
    let mut values = vec![
        100.0, 101.0, 100.0, 101.0, 100.0, 101.0, 140.0, 100.0, 101.0, 100.0, 101.0, 100.0, 101.0,
    ];
    let points = xmr_chart(&values, false);
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    close(points[0].upl, mean + 2.66 * 1.0, "screened upl");
    assert_eq!(
        points[6].special_cause,
        Some(SpecialCause::Concern),
        "the spike is high: bad when decrease improves"
    );
    values[6] = 60.0;
    let points = xmr_chart(&values, false);
    assert_eq!(points[6].special_cause, Some(SpecialCause::Improvement));
}

#[test]
fn xmr_finds_shifts_trends_and_two_of_three() {
    // Seven below the mean after seven above: every point is in a run of 7.
    let shift = [
        5.0, 6.0, 5.0, 6.0, 5.0, 6.0, 5.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0,
    ];
    let found = causes(&shift, false);
    assert!(
        found[..7].iter().all(|c| *c == Some(SpecialCause::Concern)),
        "{found:?}"
    );
    assert!(
        found[7..]
            .iter()
            .all(|c| *c == Some(SpecialCause::Improvement)),
        "{found:?}"
    );
    // Six points on one side is not a shift. Mean 10, average moving range 15/12: the 2-sigma
    // lines are at 10 ± 2.22, so no point is beyond them either.
    let short = [
        11.0, 12.0, 11.0, 12.0, 11.0, 12.0, 9.0, 8.0, 9.0, 8.0, 9.0, 8.0, 10.0,
    ];
    assert!(causes(&short, false).iter().all(Option::is_none));
    // Seven falling points (a trend), among points going up and down around the mean.
    let trend = [
        10.0, 9.0, 10.0, 9.0, 10.0, 12.0, 11.5, 11.0, 10.5, 10.0, 9.5, 9.0, 10.0, 9.0, 10.0,
    ];
    let found = causes(&trend, false);
    assert!(found[5..12].iter().all(Option::is_some), "{found:?}");
    assert!(found[..5].iter().all(Option::is_none), "{found:?}");
    // Six steps need seven points: six falling points are no trend.
    let six = [
        10.0, 9.0, 10.0, 9.0, 10.0, 12.0, 11.5, 11.0, 10.5, 10.0, 9.5, 10.0, 9.0, 10.0,
    ];
    assert!(causes(&six, false).iter().all(Option::is_none));
    // Two of three beyond 2 sigma on the same side (inside the limits): mean 10, amr 1 after the
    // pattern, 2-sigma line at about 11.77, limits at about 12.66.
    let mut two = vec![
        10.0, 9.0, 10.0, 11.0, 10.0, 9.0, 10.0, 11.0, 10.0, 9.0, 10.0, 11.0,
    ];
    two.extend([
        12.2, 10.5, 12.3, 10.0, 9.0, 10.0, 9.0, 10.0, 9.0, 10.0, 11.0, 10.0,
    ]);
    let points = xmr_chart(&two, true);
    assert!(
        points[12].upl > 12.3
            && points[12].mean + 2.0 * 2.66 / 3.0 * (points[12].upl - points[12].mean) / 2.66
                < 12.2
    );
    let found: Vec<_> = points.iter().map(|p| p.special_cause).collect();
    assert_eq!(found[12], Some(SpecialCause::Improvement), "{found:?}");
    assert_eq!(found[14], Some(SpecialCause::Improvement), "{found:?}");
    assert_eq!(
        found[13], None,
        "the middle point is not beyond 2 sigma: {found:?}"
    );
}

#[test]
fn a_flat_series_has_its_limits_at_the_mean_and_no_special_cause() {
    let points = xmr_chart(&[4.0; 12], true);
    assert!(
        points
            .iter()
            .all(|p| p.lpl == 4.0 && p.upl == 4.0 && p.special_cause.is_none())
    );
    let one = xmr_chart(&[4.0], true);
    assert_eq!(one.len(), 1);
    assert!(one[0].upl.is_nan(), "one point has no moving range");
    assert!(xmr_chart(&[], true).is_empty());
}

#[tokio::test]
async fn xmr_is_a_window_function_over_the_series_order() -> Result<()> {
    let ctx = session();
    let shuffled = "(VALUES (3, 5.0), (1, 5.0), (2, 6.0), (4, 6.0), (5, 5.0), (6, 6.0), (7, 5.0), \
                    (8, 1.0), (9, 2.0), (10, CAST(NULL AS DOUBLE)), (11, 1.0), (12, 2.0), (13, 1.0), (14, 2.0), (15, 1.0))";
    let batches = rows(
        &ctx,
        &format!(
            "SELECT month, xmr(v, 'decrease') OVER (ORDER BY month)['special_cause'] AS cause, \
                    xmr(v, 'decrease') OVER (ORDER BY month)['mean'] AS mean \
             FROM {shuffled} AS t(month, v) ORDER BY month"
        ),
    )
    .await?;
    let batch = &batches[0];
    let cause = batch
        .column_by_name("cause")
        .expect("the column is in the result")
        .as_string::<i32>();
    let expected = causes(
        &[
            5.0, 6.0, 5.0, 6.0, 5.0, 6.0, 5.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0,
        ],
        false,
    );
    let mut points = expected.iter();
    for row in 0..batch.num_rows() {
        if row == 9 {
            assert!(cause.is_null(row), "the NULL month is left out");
            continue;
        }
        let want = points
            .next()
            .expect("one more line or item")
            .map(|c| match c {
                SpecialCause::Improvement => "improvement",
                SpecialCause::Concern => "concern",
                SpecialCause::Neutral => "neutral",
            });
        assert_eq!(
            cause.is_valid(row).then(|| cause.value(row)),
            want,
            "row {row}"
        );
    }
    close(
        float_column(&batches, "mean")[0].expect("a value"),
        48.0 / 14.0,
        "mean",
    );
    let error = rows(&ctx, "SELECT xmr(1.0, 'up') OVER (ORDER BY 1)")
        .await
        .expect_err("refused");
    assert!(
        error
            .to_string()
            .contains("'increase', 'decrease' or 'neutral', got 'up'"),
        "{error}"
    );
    Ok(())
}
