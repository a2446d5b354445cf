//! The 2013 European Standard Population and `esp_age_band(age)`.

use std::sync::{Arc, LazyLock};

use arrow::array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion_common::{Result, exec_err, plan_err};
use datafusion_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::DOC_SECTION_STATS;
use crate::strings::{collect_strings, is_string_type};

/// The 2013 European Standard Population: 19 age bands and their standard populations (per
/// 100,000), as published by Eurostat and used by PHE/OHID for directly standardised rates.
pub const ESP2013: [(&str, i64); 19] = [
    ("0-4", 5000),
    ("5-9", 5500),
    ("10-14", 5500),
    ("15-19", 5500),
    ("20-24", 6000),
    ("25-29", 6000),
    ("30-34", 6500),
    ("35-39", 7000),
    ("40-44", 7000),
    ("45-49", 7000),
    ("50-54", 7000),
    ("55-59", 6500),
    ("60-64", 6000),
    ("65-69", 5500),
    ("70-74", 5000),
    ("75-79", 4000),
    ("80-84", 2500),
    ("85-89", 1500),
    ("90+", 1000),
];

/// The highest age read as an age; SUS codes above it (999 unknown) are not ages.
const OLDEST: i64 = 150;

/// The ESP 2013 band of an age in years, with SUS's codes: 7001-7007 (infants under one) are
/// `'0-4'`; 999 (unknown), negative ages and other codes have no band.
pub fn esp_age_band(age: i64) -> Option<&'static str> {
    let years = match age {
        0..=OLDEST => age,
        7001..=7007 => 0,
        _ => return None,
    };
    let index = usize::try_from(years / 5).ok()?.min(ESP2013.len() - 1);
    Some(ESP2013[index].0)
}

/// The ESP 2013 as a table: `age_band` (text), `band_order` (1-19) and `population`.
pub fn esp2013() -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("age_band", DataType::Utf8, false),
        Field::new("band_order", DataType::Int32, false),
        Field::new("population", DataType::Int64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            ESP2013.iter().map(|(band, _)| *band),
        )),
        Arc::new(Int32Array::from_iter_values(1..=19)),
        Arc::new(Int64Array::from_iter_values(
            ESP2013.iter().map(|(_, people)| *people),
        )),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// A text age as ONS publishes it: a band label (`'35-39'`, `'90+'`) is kept, an age in years
/// (`'37'`) becomes its band.
fn band_of_text(text: &str) -> Result<Option<&'static str>> {
    let text = text.trim();
    if let Some((band, _)) = ESP2013.iter().find(|(band, _)| *band == text) {
        return Ok(Some(band));
    }
    match text.parse::<i64>() {
        Ok(age) => Ok(esp_age_band(age)),
        Err(_) => exec_err!(
            "esp_age_band: '{text}' is neither an age in years nor a 2013 ESP band such as '35-39' or '90+'"
        ),
    }
}

/// `esp_age_band(age)` -> the ESP 2013 band label.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct EspAgeBand {
    signature: Signature,
}

impl Default for EspAgeBand {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl EspAgeBand {
    /// The function.
    pub fn new() -> Self {
        Self::default()
    }
}

impl ScalarUDFImpl for EspAgeBand {
    fn name(&self) -> &str {
        "esp_age_band"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [t] if t.is_integer() || t.is_null() => Ok(vec![DataType::Int64]),
            [t] if t.is_floating() || matches!(t, DataType::Decimal128(..)) => {
                Ok(vec![DataType::Int64])
            }
            [t] if is_string_type(t) => Ok(vec![t.clone()]),
            [t] => plan_err!("esp_age_band: the age must be a number or text, got {t}"),
            _ => plan_err!(
                "esp_age_band takes 1 argument (age), got {}",
                arg_types.len()
            ),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [ages] = arrays.as_slice() else {
            return exec_err!("esp_age_band takes 1 argument, got {}", arrays.len());
        };
        let bands: StringArray = if let Some(years) = ages.as_any().downcast_ref::<Int64Array>() {
            years.iter().map(|age| age.and_then(esp_age_band)).collect()
        } else {
            collect_strings(ages.as_ref())?
                .into_iter()
                .map(|text| text.map(band_of_text).transpose().map(Option::flatten))
                .collect::<Result<_>>()?
        };
        Ok(ColumnarValue::Array(Arc::new(bands)))
    }

    fn documentation(&self) -> Option<&Documentation> {
        static DOCS: LazyLock<Documentation> = LazyLock::new(|| {
            Documentation::builder(
                DOC_SECTION_STATS,
                "The 2013 European Standard Population age band ('0-4', '5-9', ..., '85-89', \
                 '90+') of an age. SUS codes are read as SUS means them: 7001-7007 (infants under \
                 one) are '0-4', 999 (unknown) is NULL. Text is an age in years or a band label, \
                 as ONS population estimates publish them. The standard populations are the \
                 table esp2013.",
                "esp_age_band(age)",
            )
            .with_argument("age", "an age in years (a SUS age), or text such as '37' or '35-39'")
            .with_sql_example(
                "```sql\nSELECT esp_age_band(coalesce(age_at_start_of_episode_sus, der_age_at_cds_activity_date)) FROM opa;\n```",
            )
            .build()
        });
        Some(&DOCS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_fall_in_their_five_year_band() {
        let cases = [
            (0, Some("0-4")),
            (4, Some("0-4")),
            (5, Some("5-9")),
            (19, Some("15-19")),
            (89, Some("85-89")),
            (90, Some("90+")),
            (120, Some("90+")),
            (7001, Some("0-4")),
            (7007, Some("0-4")),
            (7008, None),
            (999, None),
            (-1, None),
            (151, None),
        ];
        for (age, band) in cases {
            assert_eq!(esp_age_band(age), band, "{age}");
        }
    }

    #[test]
    fn the_standard_population_is_100000_in_19_bands() -> Result<()> {
        assert_eq!(ESP2013.iter().map(|(_, p)| p).sum::<i64>(), 100_000);
        assert_eq!(esp2013()?.num_rows(), 19);
        Ok(())
    }

    #[test]
    fn text_ages_are_ages_or_band_labels() -> Result<()> {
        assert_eq!(band_of_text("37")?, Some("35-39"));
        assert_eq!(band_of_text(" 35-39 ")?, Some("35-39"));
        assert_eq!(band_of_text("90+")?, Some("90+"));
        assert_eq!(band_of_text("999")?, None);
        assert!(band_of_text("35 to 39").is_err());
        Ok(())
    }
}
