//! `dsr_events` against the values PHEindicatormethods' own tests assert for
//! `calculate_dsr(independent_events = FALSE)` (`tests/testthat/testDSRs.R`, its workbook
//! `testdata_DSR_ISR.xlsx`, sheets `testdata_nonindepe` and `testresults_DSR`), on its four test
//! areas: the data here is that sheet's, and as the package's loader does, the areas other than
//! `big` have no rows for 4 events.

use datafusion::error::Result;
use datafusion::prelude::{SessionConfig, SessionContext};
use ebiq_udfs::{PersonsWithEvents, dsr_of_events, z_score};

use super::{close_within as close, float_column, rows, session_with};

/// The 2013 European Standard Population of the sheet's 19 bands, in its order.
const ESP2013: [f64; 19] = [
    5000.0, 5500.0, 5500.0, 5500.0, 6000.0, 6000.0, 6500.0, 7000.0, 7000.0, 7000.0, 7000.0, 6500.0,
    6000.0, 5500.0, 5000.0, 4000.0, 2500.0, 1500.0, 1000.0,
];

type Area = (&'static str, [(&'static str, f64, [Option<f64>; 4]); 19]);

const AREAS: [Area; 4] = [
    // big: persons with 1, 2, 3, 4 events per band
    (
        "big",
        [
            (
                "00-04",
                636.0,
                [Some(75.0), Some(16.0), Some(4.0), Some(2.0)],
            ),
            (
                "05-09",
                558.0,
                [Some(16.0), Some(3.0), Some(1.0), Some(0.0)],
            ),
            (
                "10-14",
                609.0,
                [Some(11.0), Some(2.0), Some(1.0), Some(0.0)],
            ),
            (
                "15-19",
                543.0,
                [Some(12.0), Some(3.0), Some(1.0), Some(0.0)],
            ),
            ("20-24", 384.0, [Some(8.0), Some(0.0), Some(0.0), Some(1.0)]),
            (
                "25-29",
                594.0,
                [Some(18.0), Some(3.0), Some(1.0), Some(0.0)],
            ),
            (
                "30-34",
                669.0,
                [Some(26.0), Some(6.0), Some(2.0), Some(1.0)],
            ),
            (
                "35-39",
                843.0,
                [Some(18.0), Some(3.0), Some(1.0), Some(0.0)],
            ),
            (
                "40-44",
                660.0,
                [Some(18.0), Some(4.0), Some(1.0), Some(0.0)],
            ),
            (
                "45-49",
                576.0,
                [Some(21.0), Some(4.0), Some(1.0), Some(0.0)],
            ),
            (
                "50-54",
                606.0,
                [Some(21.0), Some(4.0), Some(1.0), Some(0.0)],
            ),
            (
                "55-69",
                522.0,
                [Some(23.0), Some(4.0), Some(1.0), Some(0.0)],
            ),
            (
                "60-64",
                426.0,
                [Some(23.0), Some(6.0), Some(2.0), Some(1.0)],
            ),
            (
                "65-69",
                273.0,
                [Some(39.0), Some(8.0), Some(2.0), Some(1.0)],
            ),
            (
                "70-74",
                300.0,
                [Some(25.0), Some(5.0), Some(1.0), Some(0.0)],
            ),
            (
                "75-79",
                288.0,
                [Some(40.0), Some(9.0), Some(2.0), Some(1.0)],
            ),
            (
                "80-84",
                153.0,
                [Some(46.0), Some(9.0), Some(2.0), Some(1.0)],
            ),
            (
                "85-89",
                123.0,
                [Some(49.0), Some(10.0), Some(3.0), Some(1.0)],
            ),
            ("90+", 207.0, [Some(56.0), Some(11.0), Some(3.0), Some(1.0)]),
        ],
    ),
    // dummy: persons with 1, 2, 3, 4 events per band
    (
        "dummy",
        [
            ("00-04", 636.0, [Some(80.0), Some(10.0), Some(9.0), None]),
            ("05-09", 558.0, [Some(15.0), Some(5.0), None, None]),
            ("10-14", 609.0, [Some(10.0), Some(1.0), Some(2.0), None]),
            ("15-19", 543.0, [Some(17.0), Some(2.0), None, None]),
            ("20-24", 384.0, [Some(12.0), None, None, None]),
            ("25-29", 594.0, [Some(25.0), Some(1.0), None, None]),
            ("30-34", 669.0, [Some(30.0), Some(9.0), None, None]),
            ("35-39", 843.0, [Some(20.0), Some(2.0), Some(1.0), None]),
            ("40-44", 660.0, [Some(19.0), Some(5.0), None, None]),
            ("45-49", 576.0, [Some(23.0), Some(3.0), Some(1.0), None]),
            ("50-54", 606.0, [Some(19.0), Some(5.0), Some(1.0), None]),
            ("55-69", 522.0, [Some(30.0), Some(2.0), None, None]),
            ("60-64", 426.0, [Some(19.0), Some(7.0), Some(4.0), None]),
            ("65-69", 273.0, [Some(25.0), Some(14.0), Some(4.0), None]),
            ("70-74", 300.0, [Some(15.0), Some(10.0), Some(1.0), None]),
            ("75-79", 288.0, [Some(20.0), Some(18.0), Some(4.0), None]),
            ("80-84", 153.0, [Some(30.0), Some(16.0), Some(4.0), None]),
            ("85-89", 123.0, [Some(29.0), Some(19.0), Some(5.0), None]),
            ("90+", 207.0, [Some(22.0), Some(21.0), Some(9.0), None]),
        ],
    ),
    // small: persons with 1, 2, 3, 4 events per band
    (
        "small",
        [
            ("00-04", 636.0, [Some(7.0), Some(1.0), Some(1.0), Some(0.0)]),
            ("05-09", 558.0, [Some(4.0), Some(0.0), Some(0.0), Some(0.0)]),
            ("10-14", 609.0, [Some(3.0), Some(0.0), Some(0.0), Some(0.0)]),
            ("15-19", 543.0, [Some(0.0), Some(0.0), Some(0.0), Some(0.0)]),
            ("20-24", 384.0, [Some(3.0), Some(0.0), Some(0.0), Some(0.0)]),
            ("25-29", 594.0, [Some(4.0), Some(0.0), Some(0.0), Some(0.0)]),
            ("30-34", 669.0, [Some(5.0), Some(0.0), Some(1.0), Some(0.0)]),
            ("35-39", 843.0, [Some(2.0), Some(0.0), Some(0.0), Some(0.0)]),
            ("40-44", 660.0, [Some(2.0), Some(0.0), Some(0.0), Some(0.0)]),
            ("45-49", 576.0, [Some(3.0), Some(0.0), Some(0.0), Some(0.0)]),
            ("50-54", 606.0, [Some(4.0), Some(0.0), Some(0.0), Some(0.0)]),
            ("55-69", 522.0, [Some(5.0), Some(0.0), Some(0.0), Some(0.0)]),
            ("60-64", 426.0, [Some(3.0), Some(0.0), Some(1.0), Some(0.0)]),
            ("65-69", 273.0, [Some(5.0), Some(0.0), Some(1.0), Some(0.0)]),
            ("70-74", 300.0, [Some(5.0), Some(0.0), Some(0.0), Some(0.0)]),
            ("75-79", 288.0, [Some(3.0), Some(0.0), Some(1.0), Some(0.0)]),
            ("80-84", 153.0, [Some(5.0), Some(0.0), Some(0.0), Some(0.0)]),
            ("85-89", 123.0, [Some(5.0), Some(0.0), Some(0.0), Some(0.0)]),
            ("90+", 207.0, [Some(4.0), Some(0.0), Some(0.0), Some(0.0)]),
        ],
    ),
    // tiny: persons with 1, 2, 3, 4 events per band
    (
        "tiny",
        [
            ("00-04", 636.0, [Some(0.0), None, None, None]),
            ("05-09", 558.0, [Some(0.0), None, None, None]),
            ("10-14", 609.0, [Some(0.0), None, None, None]),
            ("15-19", 543.0, [Some(0.0), None, None, None]),
            ("20-24", 384.0, [Some(0.0), None, None, None]),
            ("25-29", 594.0, [Some(0.0), None, None, None]),
            ("30-34", 669.0, [Some(1.0), None, None, None]),
            ("35-39", 843.0, [Some(0.0), None, None, None]),
            ("40-44", 660.0, [Some(0.0), None, None, None]),
            ("45-49", 576.0, [Some(0.0), None, None, None]),
            ("50-54", 606.0, [Some(0.0), None, None, None]),
            ("55-69", 522.0, [Some(0.0), None, None, None]),
            ("60-64", 426.0, [Some(1.0), None, None, None]),
            ("65-69", 273.0, [Some(0.0), None, None, None]),
            ("70-74", 300.0, [Some(0.0), None, None, None]),
            ("75-79", 288.0, [Some(1.0), None, None, None]),
            ("80-84", 153.0, [Some(1.0), None, None, None]),
            ("85-89", 123.0, [Some(0.0), Some(1.0), None, None]),
            ("90+", 207.0, [Some(0.0), Some(0.0), Some(1.0), None]),
        ],
    ),
];

/// (area, value, lower 95%, upper 95%, lower 99.8%, upper 99.8%) as the package's results sheet
/// has them; `tiny` has fewer than 10 events and no DSR.
const RESULTS: [(&str, [f64; 5]); 3] = [
    (
        "big",
        [
            10430.24799147,
            9532.94977862,
            11373.07483298,
            9036.25631357,
            11929.24980749,
        ],
    ),
    (
        "dummy",
        [
            10430.24799147,
            9512.29883752,
            11394.77359633,
            9004.17418121,
            11963.74870404,
        ],
    ),
    (
        "small",
        [
            1082.95419841,
            817.68609755,
            1393.55884927,
            684.16751792,
            1585.49645593,
        ],
    ),
];

/// The rows of one area as the package's loader makes them.
fn area_rows(name: &str) -> Vec<PersonsWithEvents> {
    let Some((_, bands)) = AREAS.iter().find(|(area, _)| *area == name) else {
        return Vec::new();
    };
    let frequencies = if name == "big" { 4 } else { 3 };
    let mut rows = Vec::new();
    for ((band, population, persons), standard) in bands.iter().zip(ESP2013) {
        for (frequency, persons) in persons.iter().take(frequencies).enumerate() {
            rows.push(PersonsWithEvents {
                persons: *persons,
                frequency: frequency as f64 + 1.0,
                band: (*band).to_owned(),
                population: Some(*population),
                standard: Some(standard),
            });
        }
    }
    rows
}

#[test]
fn agrees_with_the_package_s_own_test_results() -> Result<()> {
    for (area, [value, low95, high95, low998, high998]) in RESULTS {
        let rows = area_rows(area);
        for (confidence, low, high) in [(0.95, low95, high95), (0.998, low998, high998)] {
            let found = dsr_of_events(&rows, z_score(confidence)?, 100_000.0)?;
            let [v, l, h] = found.expect("the area has 10 events or more");
            // The sheet gives 8 decimal places.
            close(v, value, 1e-10, &format!("{area} value"));
            close(l, low, 1e-10, &format!("{area} lower {confidence}"));
            close(h, high, 1e-10, &format!("{area} upper {confidence}"));
        }
    }
    assert_eq!(
        dsr_of_events(&area_rows("tiny"), z_score(0.95)?, 100_000.0)?,
        None
    );
    Ok(())
}

fn session(partitions: usize) -> SessionContext {
    session_with(SessionConfig::new().with_target_partitions(partitions))
}

/// Every area's rows as a table `events(area, band, frequency, persons, population, standard)`.
fn events_table_sql() -> String {
    let mut values = Vec::new();
    for (area, _) in AREAS {
        for row in area_rows(area) {
            let persons = row.persons.map_or("NULL".to_owned(), |p| p.to_string());
            values.push(format!(
                "('{area}', '{}', {}, {persons}, {}, {})",
                row.band,
                row.frequency,
                row.population.unwrap_or(f64::NAN),
                row.standard.unwrap_or(f64::NAN)
            ));
        }
    }
    format!(
        "CREATE TABLE events (area VARCHAR, band VARCHAR, frequency INT, persons INT, population INT, standard INT) AS VALUES {}",
        values.join(", ")
    )
}

#[tokio::test]
async fn through_sql_on_any_partitioning() -> Result<()> {
    for partitions in [1, 3] {
        let ctx = session(partitions);
        rows(&ctx, &events_table_sql()).await?;
        let batches = rows(
            &ctx,
            "SELECT area, d['value'] AS value, d['lower'] AS lower, d['upper'] AS upper FROM \
             (SELECT area, dsr_events(persons, frequency, band, population, standard, 0.95, 100000) AS d \
              FROM events GROUP BY area) ORDER BY area",
        )
        .await?;
        let (values, lowers) = (
            float_column(&batches, "value"),
            float_column(&batches, "lower"),
        );
        // Areas in order: big, dummy, small, tiny.
        for (index, (area, expected)) in RESULTS.iter().enumerate() {
            let what = format!("{area} on {partitions} partitions");
            close(values[index].unwrap_or(f64::NAN), expected[0], 1e-10, &what);
            close(lowers[index].unwrap_or(f64::NAN), expected[1], 1e-10, &what);
        }
        assert_eq!(values[3], None, "tiny has fewer than 10 events");
    }
    Ok(())
}

#[tokio::test]
async fn one_event_each_is_dsr_and_edges_are_errors() -> Result<()> {
    let ctx = session(2);
    rows(&ctx, &events_table_sql()).await?;
    // Each person with one event: the events are independent and the answer is dsr's.
    let batches = rows(
        &ctx,
        "SELECT dsr_events(persons, 1, band, population, standard, 0.998, 100000)['upper'] AS a, \
                dsr(persons, population, standard, 0.998, 100000)['upper'] AS b \
         FROM events WHERE area = 'big' AND frequency = 1",
    )
    .await?;
    let (a, b) = (float_column(&batches, "a"), float_column(&batches, "b"));
    close(
        a[0].unwrap_or(f64::NAN),
        b[0].unwrap_or(f64::NAN),
        1e-12,
        "as dsr",
    );
    for (sql, named) in [
        (
            "SELECT dsr_events(persons, frequency, band, CASE WHEN frequency = 2 THEN 1 ELSE population END, standard, 0.95, 100000) FROM events",
            "two populations",
        ),
        (
            "SELECT dsr_events(persons, NULL, band, population, standard, 0.95, 100000) FROM events",
            "event frequency",
        ),
        (
            "SELECT dsr_events(persons, frequency, NULL, population, standard, 0.95, 100000) FROM events",
            "band is NULL",
        ),
        (
            "SELECT dsr_events(-persons, frequency, band, population, standard, 0.95, 100000) FROM events WHERE persons > 0",
            "negative",
        ),
    ] {
        let error = rows(&ctx, sql).await.expect_err(sql).to_string();
        assert!(error.contains(named), "{sql}: {error}");
    }
    Ok(())
}
