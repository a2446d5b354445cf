//! Aggregate `dsr(count, population, standard_population, confidence, multiplier)`: a directly
//! standardised rate with the Dobson method's confidence interval.

use std::sync::LazyLock;

use arrow::array::{ArrayRef, AsArray, BooleanArray, Float64Array};
use arrow::datatypes::{DataType, FieldRef, Fields};
use datafusion_common::{Result, ScalarValue, exec_err};
use datafusion_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion_expr::{Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility};

use super::byar::byar_interval;
use super::{
    DOC_SECTION_STATS, coerce_numbers, float_at, float_fields, floats, one_value_per_call,
    state_field, struct_scalar_of_floats, z_score,
};

static FIELDS: LazyLock<Fields> = LazyLock::new(|| float_fields(&["value", "lower", "upper"]));

/// Below this total count PHE publishes no DSR: value and limits are NULL.
pub const SMALLEST_COUNT: f64 = 10.0;

/// The sums a DSR is made of, over the rows (age and sex bands) of one group.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DsrSums {
    /// Σ O: the total count.
    pub count: f64,
    /// Σ O·w/n: the standard-weighted rates.
    pub weighted_rates: f64,
    /// Σ w: the standard population.
    pub standard: f64,
    /// Σ O·(w/n)²: for the variance.
    pub squared: f64,
    /// A row had no usable population (NULL or not positive): the rate cannot be standardised.
    pub unusable: bool,
}

impl DsrSums {
    /// Adds one band: `count` events (NULL counts as none, as PHE's `na.zero`) among `population`
    /// people, whose standard population is `standard`.
    pub fn add(&mut self, count: Option<f64>, population: Option<f64>, standard: Option<f64>) {
        let (Some(population), Some(standard)) = (population, standard) else {
            self.unusable = true;
            return;
        };
        if population <= 0.0 {
            self.unusable = true;
            return;
        }
        let count = count.unwrap_or(0.0);
        self.count += count;
        self.weighted_rates += count * standard / population;
        self.standard += standard;
        self.squared += count * (standard / population).powi(2);
    }

    fn merge(&mut self, other: &Self) {
        self.count += other.count;
        self.weighted_rates += other.weighted_rates;
        self.standard += other.standard;
        self.squared += other.squared;
        self.unusable |= other.unusable;
    }

    /// `[value, lower, upper]` per `multiplier` people, as PHE's `phe_dsr` computes them:
    /// `DSR = Σ(O·w/n) / Σw`, `var = Σ(O·w²/n²) / (Σw)²`, and the Dobson limits
    /// `DSR + sqrt(var / O) · (O_limit - O)` with Byar's limits of O. `None` when the group cannot
    /// be standardised, or its total count is below 10.
    pub fn rate(&self, z: f64, multiplier: f64) -> Result<Option<[f64; 3]>> {
        if self.unusable || self.count < SMALLEST_COUNT || self.standard <= 0.0 {
            return Ok(None);
        }
        let value = self.weighted_rates / self.standard * multiplier;
        let variance = self.squared / self.standard.powi(2);
        let scale = (variance / self.count).sqrt() * multiplier;
        let [low, high] = byar_interval(self.count, z)?;
        Ok(Some([
            value,
            value + scale * (low - self.count),
            value + scale * (high - self.count),
        ]))
    }
}

/// `dsr(...)` -> `{value, lower, upper}`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Dsr {
    signature: Signature,
}

impl Default for Dsr {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl Dsr {
    /// The function.
    pub fn new() -> Self {
        Self::default()
    }
}

const ROLES: [&str; 5] = [
    "count",
    "population",
    "standard_population",
    "confidence",
    "multiplier",
];

impl AggregateUDFImpl for Dsr {
    fn name(&self) -> &str {
        "dsr"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(FIELDS.clone()))
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_numbers("dsr", &ROLES, arg_types)
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::<DsrAccumulator>::default())
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let float = |part: &str| state_field(&args, part, DataType::Float64);
        Ok(vec![
            float("count"),
            float("weighted_rates"),
            float("standard"),
            float("squared"),
            state_field(&args, "unusable", DataType::Boolean),
            float("confidence"),
            float("multiplier"),
        ])
    }

    fn documentation(&self) -> Option<&Documentation> {
        static DOCS: LazyLock<Documentation> = LazyLock::new(|| {
            Documentation::builder(
                DOC_SECTION_STATS,
                "Aggregate: the directly standardised rate of a group whose rows are its age (and \
                 sex) bands, with the Dobson method's confidence interval using Byar's limits for \
                 the total count, as PHE's phe_dsr. Value and limits are NULL when the group's \
                 total count is below 10, and when a row's population is NULL or not positive. A \
                 NULL count is no events.",
                "dsr(count, population, standard_population, confidence, multiplier)",
            )
            .with_argument("count", "events in the band")
            .with_argument("population", "people in the band")
            .with_argument("standard_population", "the band's standard population (table esp2013)")
            .with_argument("confidence", "0.95, 0.998 (or 95, 99.8)")
            .with_argument("multiplier", "100000 for a rate per 100,000")
            .with_sql_example(
                "```sql\nSELECT area, dsr(events, people, esp2013.population, 0.95, 100000)['value']\nFROM bands JOIN esp2013 USING (age_band) GROUP BY area;\n```",
            )
            .build()
        });
        Some(&DOCS)
    }
}

/// The sums so far, and the call's constant confidence and multiplier.
#[derive(Debug, Default)]
struct DsrAccumulator {
    sums: DsrSums,
    confidence: Option<f64>,
    multiplier: Option<f64>,
}

impl Accumulator for DsrAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let [count, population, standard, confidence, multiplier] = values else {
            return exec_err!("dsr takes 5 arguments, got {}", values.len());
        };
        let (count, population, standard) =
            (floats(count)?, floats(population)?, floats(standard)?);
        for row in 0..count.len() {
            let value = |column: &Float64Array| float_at(column, row);
            self.sums
                .add(value(count), value(population), value(standard));
        }
        one_value_per_call(
            "dsr",
            "confidence",
            &mut self.confidence,
            floats(confidence)?.iter(),
        )?;
        one_value_per_call(
            "dsr",
            "multiplier",
            &mut self.multiplier,
            floats(multiplier)?.iter(),
        )
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let sums = self.sums;
        Ok(vec![
            ScalarValue::Float64(Some(sums.count)),
            ScalarValue::Float64(Some(sums.weighted_rates)),
            ScalarValue::Float64(Some(sums.standard)),
            ScalarValue::Float64(Some(sums.squared)),
            ScalarValue::Boolean(Some(sums.unusable)),
            ScalarValue::Float64(self.confidence),
            ScalarValue::Float64(self.multiplier),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [
            count,
            weighted,
            standard,
            squared,
            unusable,
            confidence,
            multiplier,
        ] = states
        else {
            return exec_err!("dsr: expected 7 state columns, got {}", states.len());
        };
        let (count, weighted, standard, squared) = (
            floats(count)?,
            floats(weighted)?,
            floats(standard)?,
            floats(squared)?,
        );
        let unusable: &BooleanArray = unusable.as_boolean();
        for row in 0..count.len() {
            self.sums.merge(&DsrSums {
                count: count.value(row),
                weighted_rates: weighted.value(row),
                standard: standard.value(row),
                squared: squared.value(row),
                unusable: unusable.value(row),
            });
        }
        one_value_per_call(
            "dsr",
            "confidence",
            &mut self.confidence,
            floats(confidence)?.iter(),
        )?;
        one_value_per_call(
            "dsr",
            "multiplier",
            &mut self.multiplier,
            floats(multiplier)?.iter(),
        )
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let rate = match (self.confidence, self.multiplier) {
            (Some(confidence), Some(multiplier)) => {
                self.sums.rate(z_score(confidence)?, multiplier)?
            }
            _ => None,
        };
        struct_scalar_of_floats(&FIELDS, rate.as_ref().map(|r| r.as_slice()))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}
