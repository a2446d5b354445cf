//! Aggregate `dsr_events(persons, event_frequency, band, population, standard_population,
//! confidence, multiplier)`: a directly standardised rate of events that are not independent (one
//! person, several appointments), as PHE's `calculate_dsr(independent_events = FALSE)`.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion_common::{Result, ScalarValue, exec_err};
use datafusion_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion_expr::{Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility};

use super::byar::byar_interval;
use super::dsr::SMALLEST_COUNT;
use super::{
    Argument, DOC_SECTION_STATS, coerce_arguments, float_at, float_fields, float_list,
    float_list_scalar, floats, one_value_per_call, state_field, struct_scalar_of_floats, z_score,
};
use crate::strings::collect_strings;

static FIELDS: LazyLock<Fields> = LazyLock::new(|| float_fields(&["value", "lower", "upper"]));

const NAME: &str = "dsr_events";

/// The arguments; a band is a label or a number, either compared as text.
const ROLES: [(&str, Argument); 7] = [
    ("persons", Argument::Number),
    ("event_frequency", Argument::Number),
    ("band", Argument::Label),
    ("population", Argument::Number),
    ("standard_population", Argument::Number),
    ("confidence", Argument::Number),
    ("multiplier", Argument::Number),
];

/// One row of the input: `persons` people in `band` had `frequency` events each.
#[derive(Debug, Clone, PartialEq)]
pub struct PersonsWithEvents {
    /// People with this many events (NULL: none, as PHE's `na.zero`).
    pub persons: Option<f64>,
    /// Events each of them had.
    pub frequency: f64,
    /// The age (and sex) band.
    pub band: String,
    /// The band's population (NULL or not positive: the group cannot be standardised).
    pub population: Option<f64>,
    /// The band's standard population.
    pub standard: Option<f64>,
}

/// `[value, lower, upper]` per `multiplier` as PHE computes a DSR of non-independent events:
/// the DSR of the events (Σ frequency × persons per band); its variance the sum over event
/// frequencies f of f² × the Dobson variance of the persons with f events,
/// `Σ persons·(w/n)² / (Σw)²` with Σw over that frequency's rows; the Dobson limits with Byar's
/// limits of the total events. `None` when the total is below 10 or a band cannot be
/// standardised; an error when a band has two populations or standard populations.
pub fn dsr_of_events(
    rows: &[PersonsWithEvents],
    z: f64,
    multiplier: f64,
) -> Result<Option<[f64; 3]>> {
    // band -> (population, standard, events)
    let mut bands: BTreeMap<&str, (f64, f64, f64)> = BTreeMap::new();
    // frequency (its bits; frequencies are whole numbers) -> (Σ persons·(w/n)², Σ w)
    let mut by_frequency: BTreeMap<u64, (f64, f64, f64)> = BTreeMap::new();
    for row in rows {
        let (Some(population), Some(standard)) = (row.population, row.standard) else {
            return Ok(None);
        };
        if population <= 0.0 {
            return Ok(None);
        }
        let persons = row.persons.unwrap_or(0.0);
        let band = bands
            .entry(row.band.as_str())
            .or_insert((population, standard, 0.0));
        if (band.0, band.1) != (population, standard) {
            return exec_err!(
                "{NAME}: band '{}' has two populations or standard populations ({} and {}, {} and {}); \
                 each band needs one",
                row.band,
                band.0,
                population,
                band.1,
                standard
            );
        }
        band.2 += row.frequency * persons;
        let frequency =
            by_frequency
                .entry(row.frequency.to_bits())
                .or_insert((row.frequency, 0.0, 0.0));
        frequency.1 += persons * (standard / population).powi(2);
        frequency.2 += standard;
    }
    let events: f64 = bands.values().map(|b| b.2).sum();
    let standard: f64 = bands.values().map(|b| b.1).sum();
    if events < SMALLEST_COUNT || standard <= 0.0 {
        return Ok(None);
    }
    let weighted: f64 = bands.values().map(|(n, w, x)| x * w / n).sum();
    let value = weighted / standard * multiplier;
    let variance: f64 = by_frequency
        .values()
        .filter(|(_, _, w)| *w > 0.0)
        .map(|(f, squared, w)| f * f * squared / (w * w))
        .sum();
    let scale = (variance / events).sqrt() * multiplier;
    let [low, high] = byar_interval(events, z)?;
    Ok(Some([
        value,
        value + scale * (low - events),
        value + scale * (high - events),
    ]))
}

/// `dsr_events(...)` -> `{value, lower, upper}`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DsrEvents {
    signature: Signature,
}

impl Default for DsrEvents {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl DsrEvents {
    /// The function.
    pub fn new() -> Self {
        Self::default()
    }
}

impl AggregateUDFImpl for DsrEvents {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(FIELDS.clone()))
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_arguments(NAME, &ROLES, ROLES.len(), arg_types)
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::<DsrEventsAccumulator>::default())
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let field = |part: &str, data_type: DataType| state_field(&args, part, data_type);
        let band_list = DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)));
        Ok(vec![
            field("persons", float_list()),
            field("frequency", float_list()),
            field("band", band_list),
            field("population", float_list()),
            field("standard", float_list()),
            field("confidence", DataType::Float64),
            field("multiplier", DataType::Float64),
        ])
    }

    fn documentation(&self) -> Option<&Documentation> {
        static DOCS: LazyLock<Documentation> = LazyLock::new(|| {
            Documentation::builder(
                DOC_SECTION_STATS,
                "Aggregate: the directly standardised rate of events that are not independent \
                 (one person, several appointments), as PHE's calculate_dsr with \
                 independent_events = FALSE. Each row is a band and an event frequency: persons \
                 people in the band had event_frequency events each. The rate is dsr's over the \
                 events (sum of frequency x persons per band); its variance sums, over the \
                 frequencies f, f^2 times the Dobson variance of the persons with f events, so \
                 the interval is wider than dsr's when people repeat. NULL when the total events \
                 are below 10 or a band's population is NULL or not positive; an error when a \
                 band has two populations, or a frequency or band is NULL.",
                "dsr_events(persons, event_frequency, band, population, standard_population, confidence, multiplier)",
            )
            .with_argument("persons", "people in the band with this many events")
            .with_argument("event_frequency", "how many events each of them had")
            .with_argument("band", "the age (and sex) band")
            .with_argument("population", "people in the band (the same on each of its rows)")
            .with_argument("standard_population", "the band's standard population")
            .with_argument("confidence", "0.95, 0.998 (or 95, 99.8)")
            .with_argument("multiplier", "100000 for a rate per 100,000")
            .with_sql_example(
                "```sql\nSELECT area, dsr_events(persons, appointments, age_band, people, esp2013.population, 0.95, 100000)\nFROM people_by_appointments JOIN esp2013 USING (age_band) GROUP BY area;\n```",
            )
            .build()
        });
        Some(&DOCS)
    }
}

#[derive(Debug, Default)]
struct DsrEventsAccumulator {
    rows: Vec<PersonsWithEvents>,
    confidence: Option<f64>,
    multiplier: Option<f64>,
}

impl DsrEventsAccumulator {
    fn add_rows(&mut self, columns: [&ArrayRef; 5]) -> Result<()> {
        let [persons, frequency, band, population, standard] = columns;
        let (persons, frequency, population, standard) = (
            floats(persons)?,
            floats(frequency)?,
            floats(population)?,
            floats(standard)?,
        );
        let bands = collect_strings(band.as_ref())?;
        for (row, band) in bands.into_iter().enumerate() {
            let Some(band) = band else {
                return exec_err!("{NAME}: a band is NULL; every row needs its band");
            };
            let Some(events) = float_at(frequency, row) else {
                return exec_err!("{NAME}: the event frequency of band '{band}' is NULL");
            };
            let people = float_at(persons, row);
            if let Some(negative) = [Some(events), people]
                .into_iter()
                .flatten()
                .find(|v| *v < 0.0)
            {
                return exec_err!("{NAME}: {negative} in band '{band}' is negative");
            }
            self.rows.push(PersonsWithEvents {
                persons: people,
                frequency: events,
                band: band.to_owned(),
                population: float_at(population, row),
                standard: float_at(standard, row),
            });
        }
        Ok(())
    }

    fn keep_constants(&mut self, confidence: &ArrayRef, multiplier: &ArrayRef) -> Result<()> {
        one_value_per_call(
            NAME,
            "confidence",
            &mut self.confidence,
            floats(confidence)?.iter(),
        )?;
        one_value_per_call(
            NAME,
            "multiplier",
            &mut self.multiplier,
            floats(multiplier)?.iter(),
        )
    }
}

impl Accumulator for DsrEventsAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let [
            persons,
            frequency,
            band,
            population,
            standard,
            confidence,
            multiplier,
        ] = values
        else {
            return exec_err!("{NAME} takes 7 arguments, got {}", values.len());
        };
        self.add_rows([persons, frequency, band, population, standard])?;
        self.keep_constants(confidence, multiplier)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let floats_of = |get: fn(&PersonsWithEvents) -> Option<f64>| {
            float_list_scalar(self.rows.iter().map(get))
        };
        let bands: Vec<ScalarValue> = self
            .rows
            .iter()
            .map(|r| ScalarValue::Utf8(Some(r.band.clone())))
            .collect();
        Ok(vec![
            floats_of(|r| r.persons),
            floats_of(|r| Some(r.frequency)),
            ScalarValue::List(ScalarValue::new_list_nullable(&bands, &DataType::Utf8)),
            floats_of(|r| r.population),
            floats_of(|r| r.standard),
            ScalarValue::Float64(self.confidence),
            ScalarValue::Float64(self.multiplier),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [
            persons,
            frequency,
            band,
            population,
            standard,
            confidence,
            multiplier,
        ] = states
        else {
            return exec_err!("{NAME}: expected 7 state columns, got {}", states.len());
        };
        let lists = [persons, frequency, band, population, standard].map(|l| l.as_list::<i32>());
        for state in 0..persons.len() {
            let parts: [ArrayRef; 5] = lists.map(|list| list.value(state));
            let [p, f, b, n, w] = &parts;
            self.add_rows([p, f, b, n, w])?;
        }
        self.keep_constants(confidence, multiplier)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let rate = match (self.confidence, self.multiplier) {
            (Some(confidence), Some(multiplier)) => {
                dsr_of_events(&self.rows, z_score(confidence)?, multiplier)?
            }
            _ => None,
        };
        struct_scalar_of_floats(&FIELDS, rate.as_ref().map(|r| r.as_slice()))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self
                .rows
                .iter()
                .map(|r| std::mem::size_of_val(r) + r.band.capacity())
                .sum::<usize>()
    }
}
