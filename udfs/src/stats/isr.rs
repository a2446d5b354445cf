//! Aggregates `isr(...)` and `israte(...)`: indirectly standardised ratios and rates, as PHE's
//! `calculate_ISRatio` and `calculate_ISRate`.

use std::sync::LazyLock;

use arrow::array::{ArrayRef, AsArray, BooleanArray, Float64Array};
use arrow::datatypes::{DataType, FieldRef, Fields};
use datafusion_common::{Result, ScalarValue, exec_err};
use datafusion_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion_expr::{Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility};

use super::poisson::count_interval;
use super::{
    DOC_SECTION_STATS, coerce_numbers, confidence_level, float_at, float_fields, floats,
    one_value_per_call, state_field, struct_scalar_of_floats,
};

static RATIO_FIELDS: LazyLock<Fields> =
    LazyLock::new(|| float_fields(&["observed", "expected", "ratio", "lower", "upper"]));
static RATE_FIELDS: LazyLock<Fields> = LazyLock::new(|| {
    float_fields(&[
        "observed",
        "expected",
        "reference_rate",
        "rate",
        "lower",
        "upper",
    ])
});

/// Which of PHE's two indirect standardisations a call computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IndirectKind {
    /// `isr(observed, population, reference_rate, confidence)`: observed / expected.
    Ratio,
    /// `israte(observed, population, reference_count, reference_population, confidence,
    /// multiplier)`: observed / expected times the crude reference rate.
    Rate,
}

impl IndirectKind {
    fn name(self) -> &'static str {
        match self {
            Self::Ratio => "isr",
            Self::Rate => "israte",
        }
    }

    fn roles(self) -> &'static [&'static str] {
        match self {
            Self::Ratio => &["observed", "population", "reference_rate", "confidence"],
            Self::Rate => &[
                "observed",
                "population",
                "reference_count",
                "reference_population",
                "confidence",
                "multiplier",
            ],
        }
    }

    fn fields(self) -> &'static Fields {
        match self {
            Self::Ratio => &RATIO_FIELDS,
            Self::Rate => &RATE_FIELDS,
        }
    }
}

/// The sums an indirectly standardised ratio or rate is made of, over one group's bands.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct IsrSums {
    /// Σ observed (NULL counts are left out, as PHE's `na.rm`).
    pub observed: f64,
    /// Σ population × reference rate (a NULL population or reference count is 0, as PHE's
    /// `na.zero`).
    pub expected: f64,
    /// Σ reference count, for the crude reference rate.
    pub reference_count: f64,
    /// Σ reference population.
    pub reference_population: f64,
    /// A band had no usable reference population (NULL or not positive).
    pub unusable: bool,
}

impl IsrSums {
    /// `[observed, expected, ratio, lower, upper]`, the limits exact below 10 events and Byar's
    /// from 10, divided by the expected count.
    pub fn ratio(&self, level: f64) -> Result<[f64; 5]> {
        let [lower, upper] = count_interval(self.observed, level)?;
        let expected = if self.unusable {
            f64::NAN
        } else {
            self.expected
        };
        Ok([
            self.observed,
            expected,
            self.observed / expected,
            lower / expected,
            upper / expected,
        ])
    }

    /// `[observed, expected, reference_rate, rate, lower, upper]`: the ratio and its limits times
    /// the crude reference rate Σ reference count / Σ reference population per `multiplier`.
    pub fn rate(&self, level: f64, multiplier: f64) -> Result<[f64; 6]> {
        let [observed, expected, ratio, lower, upper] = self.ratio(level)?;
        let reference = self.reference_count / self.reference_population * multiplier;
        Ok([
            observed,
            expected,
            reference,
            ratio * reference,
            lower * reference,
            upper * reference,
        ])
    }

    fn merge(&mut self, other: &Self) {
        self.observed += other.observed;
        self.expected += other.expected;
        self.reference_count += other.reference_count;
        self.reference_population += other.reference_population;
        self.unusable |= other.unusable;
    }
}

/// `isr(...)` or `israte(...)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct IndirectStandardisation {
    kind: IndirectKind,
    signature: Signature,
}

impl IndirectStandardisation {
    /// The function of this kind.
    pub fn new(kind: IndirectKind) -> Self {
        Self {
            kind,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for IndirectStandardisation {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(self.kind.fields().clone()))
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_numbers(self.kind.name(), self.kind.roles(), arg_types)
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(IsrAccumulator {
            kind: self.kind,
            sums: IsrSums::default(),
            confidence: None,
            multiplier: None,
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(STATE
            .iter()
            .map(|part| state_field(&args, part, DataType::Float64))
            .chain([state_field(&args, "unusable", DataType::Boolean)])
            .collect())
    }

    fn documentation(&self) -> Option<&Documentation> {
        static RATIO: LazyLock<Documentation> = LazyLock::new(|| {
            Documentation::builder(
                DOC_SECTION_STATS,
                "Aggregate: the indirectly standardised ratio of a group whose rows are its age \
                 (and sex) bands, as PHE's calculate_ISRatio: observed = sum(observed), expected \
                 = sum(population * reference_rate), ratio = observed / expected, with limits \
                 exact below 10 events and Byar's from 10, divided by expected. NULL observed \
                 counts are left out; a NULL population or reference rate counts as 0. Ratio and \
                 limits are NULL when expected is 0. Multiply by 100 for 100 = expected.",
                "isr(observed, population, reference_rate, confidence)",
            )
            .with_argument("observed", "events in the band")
            .with_argument("population", "people (or activity) in the band")
            .with_argument("reference_rate", "the band's rate in the reference population")
            .with_argument("confidence", "0.95, 0.998 (or 95, 99.8)")
            .with_sql_example(
                "```sql\nSELECT provider, isr(flagged, activity, national_rate, 0.95)['ratio']\nFROM bands JOIN national USING (age_band, sex) GROUP BY provider;\n```",
            )
            .build()
        });
        static RATE: LazyLock<Documentation> = LazyLock::new(|| {
            Documentation::builder(
                DOC_SECTION_STATS,
                "Aggregate: the indirectly standardised rate of a group whose rows are its age \
                 (and sex) bands, as PHE's calculate_ISRate: the ratio observed / expected (as \
                 isr, expected = sum(population * reference_count / reference_population)) times \
                 the crude reference rate sum(reference_count) / sum(reference_population) * \
                 multiplier, with the ratio's limits scaled the same way. NULL when a band's \
                 reference population is NULL or not positive, or expected is 0.",
                "israte(observed, population, reference_count, reference_population, confidence, multiplier)",
            )
            .with_argument("observed", "events in the band")
            .with_argument("population", "people in the band")
            .with_argument("reference_count", "the band's events in the reference population")
            .with_argument("reference_population", "the band's reference population")
            .with_argument("confidence", "0.95, 0.998 (or 95, 99.8)")
            .with_argument("multiplier", "100000 for a rate per 100,000")
            .build()
        });
        Some(match self.kind {
            IndirectKind::Ratio => &RATIO,
            IndirectKind::Rate => &RATE,
        })
    }
}

/// The Float64 parts of the state, in order; `unusable` follows.
const STATE: [&str; 6] = [
    "observed",
    "expected",
    "reference_count",
    "reference_population",
    "confidence",
    "multiplier",
];

#[derive(Debug)]
struct IsrAccumulator {
    kind: IndirectKind,
    sums: IsrSums,
    confidence: Option<f64>,
    multiplier: Option<f64>,
}

impl IsrAccumulator {
    fn add_bands(
        &mut self,
        observed: &Float64Array,
        population: &Float64Array,
        reference: [&Float64Array; 2],
    ) -> Result<()> {
        let name = self.kind.name();
        for row in 0..observed.len() {
            let count = float_at(observed, row);
            let people = float_at(population, row);
            if let Some(negative) = [count, people].into_iter().flatten().find(|v| *v < 0.0) {
                return exec_err!(
                    "{name}: {negative} is negative; counts and populations cannot be"
                );
            }
            let band_rate = match self.kind {
                IndirectKind::Ratio => float_at(reference[0], row).unwrap_or(0.0),
                IndirectKind::Rate => {
                    let reference_count = float_at(reference[0], row).unwrap_or(0.0);
                    match float_at(reference[1], row) {
                        Some(people) if people > 0.0 => {
                            self.sums.reference_count += reference_count;
                            self.sums.reference_population += people;
                            reference_count / people
                        }
                        _ => {
                            self.sums.unusable = true;
                            0.0
                        }
                    }
                }
            };
            if band_rate < 0.0 {
                return exec_err!("{name}: the reference rate {band_rate} is negative");
            }
            self.sums.observed += count.unwrap_or(0.0);
            self.sums.expected += people.unwrap_or(0.0) * band_rate;
        }
        Ok(())
    }

    fn keep_constants(
        &mut self,
        confidence: &Float64Array,
        multiplier: Option<&Float64Array>,
    ) -> Result<()> {
        let name = self.kind.name();
        one_value_per_call(name, "confidence", &mut self.confidence, confidence.iter())?;
        if let Some(multiplier) = multiplier {
            one_value_per_call(name, "multiplier", &mut self.multiplier, multiplier.iter())?;
        }
        Ok(())
    }
}

impl Accumulator for IsrAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        match (self.kind, values) {
            (IndirectKind::Ratio, [observed, population, rate, confidence]) => {
                self.add_bands(floats(observed)?, floats(population)?, [floats(rate)?; 2])?;
                self.keep_constants(floats(confidence)?, None)
            }
            (IndirectKind::Rate, [observed, population, count, people, confidence, multiplier]) => {
                self.add_bands(
                    floats(observed)?,
                    floats(population)?,
                    [floats(count)?, floats(people)?],
                )?;
                self.keep_constants(floats(confidence)?, Some(floats(multiplier)?))
            }
            (kind, _) => exec_err!(
                "{} takes {} arguments, got {}",
                kind.name(),
                kind.roles().len(),
                values.len()
            ),
        }
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let sums = self.sums;
        Ok(vec![
            ScalarValue::Float64(Some(sums.observed)),
            ScalarValue::Float64(Some(sums.expected)),
            ScalarValue::Float64(Some(sums.reference_count)),
            ScalarValue::Float64(Some(sums.reference_population)),
            ScalarValue::Float64(self.confidence),
            ScalarValue::Float64(self.multiplier),
            ScalarValue::Boolean(Some(sums.unusable)),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [
            observed,
            expected,
            count,
            people,
            confidence,
            multiplier,
            unusable,
        ] = states
        else {
            return exec_err!(
                "{}: expected 7 state columns, got {}",
                self.kind.name(),
                states.len()
            );
        };
        let (observed, expected, count, people) = (
            floats(observed)?,
            floats(expected)?,
            floats(count)?,
            floats(people)?,
        );
        let unusable: &BooleanArray = unusable.as_boolean();
        for row in 0..observed.len() {
            self.sums.merge(&IsrSums {
                observed: observed.value(row),
                expected: expected.value(row),
                reference_count: count.value(row),
                reference_population: people.value(row),
                unusable: unusable.value(row),
            });
        }
        self.keep_constants(floats(confidence)?, Some(floats(multiplier)?))
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let values: Option<Vec<f64>> = match (self.kind, self.confidence, self.multiplier) {
            (IndirectKind::Ratio, Some(confidence), _) => {
                Some(self.sums.ratio(confidence_level(confidence)?)?.to_vec())
            }
            (IndirectKind::Rate, Some(confidence), Some(multiplier)) => Some(
                self.sums
                    .rate(confidence_level(confidence)?, multiplier)?
                    .to_vec(),
            ),
            _ => None,
        };
        struct_scalar_of_floats(self.kind.fields(), values.as_deref())
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}
