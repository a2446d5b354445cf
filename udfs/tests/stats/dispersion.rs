//! `overdispersion` and `funnel_ratio_od` against `tests/reference/stats_reference.py`, which
//! works FunnelPlotR's SR methods out with scipy's `rankdata` (SHMI's truncation by rank) and
//! numpy's type-7 quantile (CQC's winsorising), and Spiegelhalter's adjusted limits with scipy's
//! normal quantile.

use datafusion::error::Result;
use datafusion::prelude::{SessionConfig, SessionContext};
use ebiq_udfs::{Dispersion, DispersionMethod, adjusted_ratio_limits, dispersion};

use super::{close_within as close, float_column, rows, session_with};

/// The reference script's twenty providers: `round(E * ratio)` observed against E expected.
const GROUPS: [(f64, f64); 20] = [
    (35.0, 25.0),
    (28.0, 40.0),
    (72.0, 60.0),
    (68.0, 80.0),
    (110.0, 100.0),
    (135.0, 150.0),
    (260.0, 200.0),
    (188.0, 250.0),
    (315.0, 300.0),
    (380.0, 400.0),
    (575.0, 500.0),
    (520.0, 650.0),
    (1000.0, 800.0),
    (900.0, 1000.0),
    (1200.0, 1200.0),
    (1650.0, 1500.0),
    (1530.0, 1800.0),
    (2640.0, 2200.0),
    (2470.0, 2600.0),
    (3150.0, 3000.0),
];

/// (method, phi, tau2, groups used) from the reference script.
const DISPERSIONS: [(DispersionMethod, f64, f64, usize); 2] = [
    (
        DispersionMethod::Shmi,
        6.182_383_563_728_647_5,
        0.008_782_478_038_529_334,
        16,
    ),
    (
        DispersionMethod::Cqc,
        8.594_445_714_128_18,
        0.002_537_846_615_550_727,
        20,
    ),
];

/// (method, expected, confidence, lower, upper) from the reference script.
const LIMITS: [(DispersionMethod, f64, f64, f64, f64); 12] = [
    (
        DispersionMethod::Shmi,
        50.0,
        0.95,
        0.717_117_395_587_019_7,
        1.394_471_820_309_724_4,
    ),
    (
        DispersionMethod::Shmi,
        50.0,
        0.998,
        0.591_987_205_659_633_4,
        1.689_225_696_838_718_5,
    ),
    (
        DispersionMethod::Shmi,
        500.0,
        0.95,
        0.815_853_776_902_145_3,
        1.225_709_837_119_429_5,
    ),
    (
        DispersionMethod::Shmi,
        500.0,
        0.998,
        0.725_506_141_576_061_4,
        1.378_348_083_763_479_6,
    ),
    (
        DispersionMethod::Shmi,
        5000.0,
        0.95,
        0.830_475_026_269_867_7,
        1.204_130_128_381_541_8,
    ),
    (
        DispersionMethod::Shmi,
        5000.0,
        0.998,
        0.746_111_923_019_766_8,
        1.340_281_490_145_154_5,
    ),
    (
        DispersionMethod::Cqc,
        50.0,
        0.95,
        0.688_625_151_188_400_6,
        1.369_287_503_552_292_5,
    ),
    (
        DispersionMethod::Cqc,
        50.0,
        0.998,
        0.535_390_220_572_094_8,
        1.608_575_650_232_266,
    ),
    (
        DispersionMethod::Cqc,
        500.0,
        0.95,
        0.795_616_411_143_643_5,
        1.227_723_114_210_802_7,
    ),
    (
        DispersionMethod::Cqc,
        500.0,
        0.998,
        0.688_363_435_281_695_1,
        1.369_656_614_167_916_5,
    ),
    (
        DispersionMethod::Cqc,
        5000.0,
        0.95,
        0.810_530_913_811_325_6,
        1.209_351_298_604_496,
    ),
    (
        DispersionMethod::Cqc,
        5000.0,
        0.998,
        0.710_307_048_867_061_2,
        1.339_118_418_447_075_5,
    ),
];

fn name(method: DispersionMethod) -> &'static str {
    match method {
        DispersionMethod::Shmi => "SHMI",
        DispersionMethod::Cqc => "CQC",
    }
}

#[test]
fn phi_and_tau2_agree_with_the_reference() -> Result<()> {
    for (method, phi, tau2, used) in DISPERSIONS {
        let found = dispersion(&GROUPS, method, 0.1)?.expect("twenty groups have a dispersion");
        close(found.phi, phi, 1e-12, &format!("{method:?} phi"));
        close(found.tau2, tau2, 1e-12, &format!("{method:?} tau2"));
        assert_eq!(found.groups, used, "{method:?} groups used");
    }
    Ok(())
}

#[test]
fn adjusted_limits_agree_with_the_reference() -> Result<()> {
    for (method, expected, confidence, lower, upper) in LIMITS {
        let (_, phi, tau2, _) = DISPERSIONS
            .into_iter()
            .find(|d| d.0 == method)
            .expect("each method has a dispersion");
        let dispersion = Dispersion {
            phi,
            tau2,
            groups: 0,
        };
        let limits = adjusted_ratio_limits(expected, confidence, method, dispersion)?;
        let [low, high] = limits.expect("a positive expected count has limits");
        let what = format!("{method:?} at {expected}, {confidence}");
        close(low, lower, 1e-12, &what);
        close(high, upper, 1e-12, &what);
    }
    Ok(())
}

#[test]
fn without_overdispersion_the_limits_are_poisson_s() -> Result<()> {
    let calm = Dispersion {
        phi: 0.8,
        tau2: 0.0,
        groups: 20,
    };
    for method in [DispersionMethod::Shmi, DispersionMethod::Cqc] {
        assert_eq!(
            adjusted_ratio_limits(12.5, 0.998, method, calm)?,
            ebiq_udfs::ratio_funnel_limits(12.5, 0.998)?,
        );
        assert_eq!(adjusted_ratio_limits(0.0, 0.95, method, calm)?, None);
    }
    Ok(())
}

#[test]
fn edges_of_the_estimate() -> Result<()> {
    // No group with a positive expected count: nothing to estimate.
    assert_eq!(dispersion(&[(3.0, 0.0)], DispersionMethod::Cqc, 0.1)?, None);
    // One group: phi is its squared z-score, tau2 cannot be estimated.
    let one = dispersion(&[(30.0, 20.0)], DispersionMethod::Cqc, 0.1)?.expect("one group");
    close(
        one.phi,
        (2.0 * (30f64.sqrt() - 20f64.sqrt())).powi(2),
        1e-12,
        "phi",
    );
    assert!(one.tau2.is_nan());
    assert!(dispersion(&GROUPS, DispersionMethod::Shmi, 0.5).is_err());
    assert!(dispersion(&[(-1.0, 2.0)], DispersionMethod::Shmi, 0.1).is_err());
    assert!(DispersionMethod::parse("shmi").is_ok());
    assert!(DispersionMethod::parse("spiegelhalter").is_err());
    Ok(())
}

fn session(partitions: usize) -> SessionContext {
    session_with(SessionConfig::new().with_target_partitions(partitions))
}

/// The twenty providers as a table, in `partitions` pieces so partial states merge.
fn providers_sql() -> String {
    let rows: Vec<String> = GROUPS
        .iter()
        .enumerate()
        .map(|(i, (o, e))| format!("('P{i:02}', {o}, {e})"))
        .collect();
    format!(
        "CREATE TABLE providers (provider VARCHAR, observed DOUBLE, expected DOUBLE) AS VALUES {}",
        rows.join(", ")
    )
}

#[tokio::test]
async fn overdispersion_and_its_limits_through_sql_on_any_partitioning() -> Result<()> {
    for partitions in [1, 4] {
        let ctx = session(partitions);
        rows(&ctx, &providers_sql()).await?;
        for (method, phi, tau2, used) in DISPERSIONS {
            let method = name(method);
            let sql = format!(
                "WITH od AS (SELECT overdispersion(observed, expected, '{method}') AS d FROM providers) \
                 SELECT d['phi'] AS phi, d['tau2'] AS tau2, d['groups'] AS groups FROM od"
            );
            let batches = rows(&ctx, &sql).await?;
            let what = format!("{method} on {partitions} partitions");
            close(
                float_column(&batches, "phi")[0].unwrap_or(f64::NAN),
                phi,
                1e-12,
                &what,
            );
            close(
                float_column(&batches, "tau2")[0].unwrap_or(f64::NAN),
                tau2,
                1e-12,
                &what,
            );
            assert_eq!(
                float_column(&batches, "groups"),
                vec![Some(used as f64)],
                "{what}"
            );
        }
        let sql = "WITH od AS (SELECT overdispersion(observed, expected, 'SHMI') AS d FROM providers) \
                   SELECT l['lower'] AS lower, l['upper'] AS upper FROM \
                   (SELECT funnel_ratio_od(500, 0.998, 'SHMI', d['phi'], d['tau2']) AS l FROM od)";
        let batches = rows(&ctx, sql).await?;
        close(
            float_column(&batches, "lower")[0].unwrap_or(f64::NAN),
            LIMITS[3].3,
            1e-12,
            "sql lower",
        );
        close(
            float_column(&batches, "upper")[0].unwrap_or(f64::NAN),
            LIMITS[3].4,
            1e-12,
            "sql upper",
        );
    }
    Ok(())
}

#[tokio::test]
async fn sql_edges_are_nulls_and_errors_naming_the_value() -> Result<()> {
    let ctx = session(1);
    rows(&ctx, &providers_sql()).await?;
    // NULL rows are left out; an empty input has no dispersion.
    let batches = rows(
        &ctx,
        "SELECT overdispersion(observed, expected, 'CQC')['phi'] AS phi FROM providers WHERE observed < 0",
    )
    .await?;
    assert_eq!(float_column(&batches, "phi"), vec![None]);
    let batches = rows(
        &ctx,
        "SELECT funnel_ratio_od(e, 0.95, 'CQC', 2.0, 0.01)['upper'] AS upper \
         FROM (VALUES (CAST(NULL AS DOUBLE)), (0.0), (100.0)) AS t(e)",
    )
    .await?;
    let upper = float_column(&batches, "upper");
    assert_eq!(&upper[..2], &[None, None]);
    assert!(upper[2].is_some_and(|u| u > 1.0));
    for (sql, named) in [
        (
            "SELECT overdispersion(observed, expected, 'funnel') FROM providers",
            "'funnel'",
        ),
        (
            "SELECT overdispersion(observed, expected, CASE WHEN observed > 500 THEN 'SHMI' ELSE 'CQC' END) FROM providers",
            "one value for every row",
        ),
        (
            "SELECT funnel_ratio_od(100, 0.95, 'CQC', 2.0, -0.5) FROM providers",
            "-0.5",
        ),
    ] {
        let error = rows(&ctx, sql).await.expect_err(sql).to_string();
        assert!(error.contains(named), "{sql}: {error}");
    }
    Ok(())
}
