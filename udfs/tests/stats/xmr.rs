//! Making Data Count in full (`xmr` with a neutral direction, screening off, a fixed baseline, a
//! recalculation, and the variation and assurance icons), against series worked by hand from
//! NHSRplotthedots' rules (`ptd_spc_standard`, `ptd_calculate_point_type`,
//! `ptd_calculate_assurance_type`, `ptd_get_icons`).

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::error::Result;
use ebiq_udfs::{Improvement, SpecialCause, XmrPoint, XmrSettings, xmr_chart};

use super::{close, float_column, rows, session};

/// Seven points above the mean, then seven below: every point is part of a run of 7. Mean 48/14;
/// moving ranges twelve 1s and a 4, average 16/13 (4 is under 3.267 times it, so kept).
const SHIFT: [f64; 14] = [
    5.0, 6.0, 5.0, 6.0, 5.0, 6.0, 5.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0,
];

/// A falling trend (points 5 to 11) that starts above the mean and ends below it, inside the
/// limits: mean 150.5/15, average moving range 12/14, upper limit about 12.31.
const FALLING: [f64; 15] = [
    10.0, 9.0, 10.0, 9.0, 10.0, 12.0, 11.5, 11.0, 10.5, 10.0, 9.5, 9.0, 10.0, 9.0, 10.0,
];

fn chart(values: &[f64], improvement: Improvement) -> Vec<XmrPoint> {
    xmr_chart(values, XmrSettings::new(improvement))
}

#[test]
fn a_trend_points_the_way_it_runs_whichever_side_of_the_mean() {
    // NHSRplotthedots labels every point of a trend by its direction ("7 Point Trend
    // (Decreasing)"), so all seven are one kind of special cause.
    for (improvement, cause) in [
        (Improvement::Decrease, SpecialCause::Improvement),
        (Improvement::Increase, SpecialCause::Concern),
        (Improvement::Neutral, SpecialCause::Neutral),
    ] {
        let points = chart(&FALLING, improvement);
        for point in &points[5..12] {
            assert_eq!(
                point.special_cause,
                Some(cause),
                "{improvement:?}: {points:?}"
            );
            assert!(!point.high, "a falling trend is low");
        }
        assert_eq!(points[14].special_cause, None);
        assert_eq!(points[14].variation_icon(), "common_cause");
    }
}

#[test]
fn the_variation_icon_is_the_last_point_s() {
    for (improvement, icon) in [
        (Improvement::Decrease, "improvement_low"),
        (Improvement::Increase, "concern_low"),
        (Improvement::Neutral, "neutral_low"),
    ] {
        let points = chart(&SHIFT, improvement);
        assert_eq!(points[13].variation_icon(), icon, "{improvement:?}");
        let first_half_high = match improvement {
            Improvement::Decrease => "concern_high",
            Improvement::Increase => "improvement_high",
            Improvement::Neutral => "neutral_high",
        };
        assert_eq!(points[0].variation_icon(), first_half_high);
    }
}

#[test]
fn the_assurance_icon_compares_the_target_with_the_last_limits() {
    let last = chart(&SHIFT, Improvement::Increase)[13];
    let (mean, amr) = (48.0 / 14.0, 16.0 / 13.0);
    close(last.lpl, mean - 2.66 * amr, "lpl");
    close(last.upl, mean + 2.66 * amr, "upl");
    // Limits about 0.15 to 6.70.
    for (target, increase, decrease) in [
        (8.0, "fail", "pass"),
        (0.0, "pass", "fail"),
        (3.0, "inconsistent", "inconsistent"),
    ] {
        assert_eq!(
            last.assurance_icon(target, Improvement::Increase),
            Some(increase)
        );
        assert_eq!(
            last.assurance_icon(target, Improvement::Decrease),
            Some(decrease)
        );
        assert_eq!(last.assurance_icon(target, Improvement::Neutral), None);
    }
}

#[test]
fn screening_can_be_turned_off() {
    // Moving ranges: ten 1s, 39 and 40 around the spike; their average 89/12. Screened (at 3.267
    // times it) the 39 and 40 go and the average is 1.
    let values = [
        100.0, 101.0, 100.0, 101.0, 100.0, 101.0, 140.0, 100.0, 101.0, 100.0, 101.0, 100.0, 101.0,
    ];
    let mean = values.iter().sum::<f64>() / 13.0;
    let mut settings = XmrSettings::new(Improvement::Decrease);
    close(xmr_chart(&values, settings)[0].upl, mean + 2.66, "screened");
    settings.screen = false;
    let unscreened = xmr_chart(&values, settings);
    close(unscreened[0].upl, mean + 2.66 * 89.0 / 12.0, "unscreened");
    // Limits about 103.6 ± 19.7: the spike is still outside, and now the only special cause.
    assert_eq!(unscreened[6].special_cause, Some(SpecialCause::Concern));
    assert_eq!(
        unscreened
            .iter()
            .filter(|p| p.special_cause.is_some())
            .count(),
        1
    );
}

#[test]
fn a_fixed_baseline_sets_the_limits_for_every_point() {
    // The first four points: mean 11, moving ranges 2, 2, 2; limits 11 ± 5.32. The three 30s
    // after them are outside.
    let values = [10.0, 12.0, 10.0, 12.0, 30.0, 30.0, 30.0];
    let mut settings = XmrSettings::new(Improvement::Decrease);
    settings.fix_after = Some(4);
    let points = xmr_chart(&values, settings);
    for point in &points {
        close(point.mean, 11.0, "mean");
        close(point.upl, 11.0 + 2.66 * 2.0, "upl");
    }
    assert!(points[..4].iter().all(|p| p.special_cause.is_none()));
    assert!(
        points[4..]
            .iter()
            .all(|p| p.special_cause == Some(SpecialCause::Concern) && p.high)
    );
    // A baseline longer than the series is the whole series.
    settings.fix_after = Some(40);
    let whole = xmr_chart(&values, settings);
    close(whole[0].mean, 134.0 / 7.0, "whole-series mean");
}

fn strings(batches: &[RecordBatch], name: &str) -> Vec<Option<String>> {
    batches
        .iter()
        .flat_map(|b| {
            let column = b
                .column_by_name(name)
                .expect("the column is in the result")
                .as_string::<i32>();
            (0..column.len())
                .map(|row| column.is_valid(row).then(|| column.value(row).to_owned()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The SHIFT series as months 1..14 (month 15 has no value).
fn shift_table() -> String {
    let rows: Vec<String> = SHIFT
        .iter()
        .enumerate()
        .map(|(i, v)| format!("({}, {v})", i + 1))
        .chain(["(15, CAST(NULL AS DOUBLE))".to_owned()])
        .collect();
    format!("(VALUES {}) AS t(month, v)", rows.join(", "))
}

#[tokio::test]
async fn a_recalculation_starts_a_period_with_its_own_limits() -> Result<()> {
    let ctx = session();
    let sql = format!(
        "SELECT month, x['mean'] AS mean, x['special_cause'] AS cause, x['variation_icon'] AS variation, \
                x['assurance_icon'] AS assurance \
         FROM (SELECT month, xmr(v, 'decrease', 5, month = 8) OVER (ORDER BY month) AS x FROM {}) \
         ORDER BY month",
        shift_table()
    );
    let batches = rows(&ctx, &sql).await?;
    let means = float_column(&batches, "mean");
    // Two periods of 5, 6, 5, 6, 5, 6, 5 and 1, 2, 1, 2, 1, 2, 1: each varies about its own mean.
    for month in 0..7 {
        close(means[month].unwrap_or(f64::NAN), 38.0 / 7.0, "first period");
        close(
            means[month + 7].unwrap_or(f64::NAN),
            10.0 / 7.0,
            "second period",
        );
    }
    assert_eq!(means[14], None, "a month without a value");
    assert!(strings(&batches, "cause").iter().all(Option::is_none));
    // The second period's limits, 10/7 ± 2.66 (up to about 4.09): the target 5 is above them, a
    // pass when lower is better. The icons are the series' and on every row with a value.
    let variation = strings(&batches, "variation");
    let assurance = strings(&batches, "assurance");
    for month in 0..14 {
        assert_eq!(variation[month].as_deref(), Some("common_cause"));
        assert_eq!(assurance[month].as_deref(), Some("pass"));
    }
    assert_eq!(
        (variation[14].as_deref(), assurance[14].as_deref()),
        (None, None)
    );
    Ok(())
}

#[tokio::test]
async fn neutral_fixed_and_unscreened_through_sql() -> Result<()> {
    let ctx = session();
    let sql = format!(
        "SELECT month, x['mean'] AS mean, x['special_cause'] AS cause, x['variation_icon'] AS variation, \
                x['assurance_icon'] AS assurance \
         FROM (SELECT month, xmr(v, 'neutral', 3, NULL, 7, false) OVER (ORDER BY month) AS x FROM {}) \
         ORDER BY month",
        shift_table()
    );
    let batches = rows(&ctx, &sql).await?;
    // Limits from the first seven points: mean 38/7, average moving range 1, limits 38/7 ± 2.66;
    // every 1 and 2 after them is below the lower limit.
    let means = float_column(&batches, "mean");
    close(means[10].unwrap_or(f64::NAN), 38.0 / 7.0, "fixed mean");
    let causes = strings(&batches, "cause");
    assert!(
        causes[7..14]
            .iter()
            .all(|c| c.as_deref() == Some("neutral"))
    );
    assert_eq!(
        strings(&batches, "variation")[0].as_deref(),
        Some("neutral_low")
    );
    assert_eq!(
        strings(&batches, "assurance")[0],
        None,
        "no assurance when neutral"
    );
    Ok(())
}

#[tokio::test]
async fn settings_that_cannot_be_used_are_errors_naming_them() -> Result<()> {
    let ctx = session();
    let table = shift_table();
    for (call, named) in [
        ("xmr(v, 'sideways')", "'sideways'"),
        ("xmr(v, 'decrease', NULL, NULL, 0)", "fix_after"),
        ("xmr(v, 'decrease', NULL, NULL, 2.5)", "2.5"),
        ("xmr(v, 'decrease', month)", "target must be one value"),
        (
            "xmr(v, 'decrease', NULL, 'yes')",
            "recalculate must be true or false",
        ),
    ] {
        let sql = format!("SELECT {call} OVER (ORDER BY month) FROM {table}");
        let error = rows(&ctx, &sql).await.expect_err(&sql).to_string();
        assert!(error.contains(named), "{sql}: {error}");
    }
    Ok(())
}
