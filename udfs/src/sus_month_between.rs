//! `sus_month_between(month, low, high)`: `sus_month(month) BETWEEN low AND high` in one pass,
//! for constant bounds. Every report query filters every row on its month range; written the plain
//! way, that built a new string column of the valid months and compared each with both bounds
//! (about 5% of the whole report's work). ebiq's planner writes the plain form as this call.

use std::sync::LazyLock;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, StringViewArray};
use arrow::buffer::{BooleanBuffer, NullBuffer};
use arrow::datatypes::DataType;
use datafusion_common::{Result, ScalarValue, exec_err, plan_err};
use datafusion_expr::scalar_doc_sections::DOC_SECTION_STRING;
use datafusion_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use crate::bits::true_rows;
use crate::strings::{is_string_type, scalar_str, test_strings};
use crate::sus_month::{is_sus_month, is_sus_month_view};

/// The range a valid month's six bytes must fall in, as big-endian numbers of six bytes: a month
/// is six ASCII digits, so comparing it with a bound byte by byte is comparing these numbers.
#[derive(Debug, Clone, Copy)]
struct KeyRange {
    least: u64,
    most: u64,
}

impl KeyRange {
    fn new(low: &str, high: &str) -> Self {
        // A bound of six bytes or fewer, padded with zero bytes: no digit is below a zero byte,
        // so a month that begins with a shorter bound sorts after it, as it does byte by byte.
        // A longer bound's first six bytes: a month equal to them is a prefix of the bound, so
        // below it, which `low` counts by one more.
        let (low_key, low_longer) = key_of_bound(low.as_bytes());
        let (high_key, _) = key_of_bound(high.as_bytes());
        Self {
            least: low_key + u64::from(low_longer),
            most: high_key,
        }
    }

    fn holds(self, key: u64) -> bool {
        (self.least <= key) & (key <= self.most)
    }
}

/// A bound's first six bytes as a big-endian number (zero bytes after a shorter bound), and
/// whether the bound is longer than six bytes.
fn key_of_bound(bound: &[u8]) -> (u64, bool) {
    let mut bytes = [0u8; 8];
    let kept = bound.len().min(6);
    bytes[2..2 + kept].copy_from_slice(&bound[..kept]);
    (u64::from_be_bytes(bytes), bound.len() > 6)
}

/// A month's six bytes as a big-endian number, from the string view that holds them in place.
fn key_of_view(view: u128) -> u64 {
    let text = (view >> 32) as u64 & 0xFFFF_FFFF_FFFF;
    text.swap_bytes() >> 16
}

/// `sus_month(month) BETWEEN low AND high` for each row of `months`: NULL where the month is NULL
/// or not a SUS month.
fn between(months: &ArrayRef, range: KeyRange) -> Result<BooleanArray> {
    if let Some(views) = months.as_string_view_opt() {
        return Ok(views_between(views, range));
    }
    let valid = test_strings(months.as_ref(), None, |m: &str| is_sus_month(m))?;
    let within = test_strings(months.as_ref(), None, |m: &str| {
        is_sus_month(m) && range.holds(key_of_bound(m.as_bytes()).0)
    })?;
    Ok(BooleanArray::new(
        within.values().clone(),
        Some(NullBuffer::new(true_rows(&valid))),
    ))
}

/// [`between`] for string views, each tested and compared in place, with no branch per row.
fn views_between(months: &StringViewArray, range: KeyRange) -> BooleanArray {
    let views = months.views();
    let valid = BooleanBuffer::collect_bool(views.len(), |row| is_sus_month_view(views[row]));
    let within =
        BooleanBuffer::collect_bool(views.len(), |row| range.holds(key_of_view(views[row])));
    // A NULL slot's view may hold a month: the slot stays NULL.
    let valid = match months.nulls() {
        Some(present) => &valid & present.inner(),
        None => valid,
    };
    BooleanArray::new(&within & &valid, Some(NullBuffer::new(valid)))
}

/// `sus_month_between(month, low, high)`: whether a valid SUS month (yyyymm) lies between two
/// constant bounds, both included, compared as text; NULL for a month `sus_month` makes NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SusMonthBetween {
    signature: Signature,
}

impl Default for SusMonthBetween {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl SusMonthBetween {
    /// The function.
    pub fn new() -> Self {
        Self::default()
    }
}

impl ScalarUDFImpl for SusMonthBetween {
    fn name(&self) -> &str {
        "sus_month_between"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [month, low, high] => Ok([month, low, high]
                .map(|t| match t {
                    DataType::Null => Ok(DataType::Utf8),
                    t if is_string_type(t) => Ok(t.clone()),
                    t => plan_err!("sus_month_between takes text (yyyymm), got {t}"),
                })
                .into_iter()
                .collect::<Result<_>>()?),
            _ => plan_err!(
                "sus_month_between takes 3 arguments, got {}",
                arg_types.len()
            ),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [
            month,
            ColumnarValue::Scalar(low),
            ColumnarValue::Scalar(high),
        ] = args.args.as_slice()
        else {
            return exec_err!("sus_month_between takes a month and two constant bounds");
        };
        let (Some(low), Some(high)) = (scalar_str(low)?, scalar_str(high)?) else {
            return exec_err!("sus_month_between takes bounds that are not NULL");
        };
        let range = KeyRange::new(low, high);
        match month {
            ColumnarValue::Array(months) => Ok(ColumnarValue::Array(std::sync::Arc::new(between(
                months, range,
            )?))),
            ColumnarValue::Scalar(scalar) => {
                let within: ArrayRef = std::sync::Arc::new(between(&scalar.to_array()?, range)?);
                Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                    &within, 0,
                )?))
            }
        }
    }

    fn documentation(&self) -> Option<&Documentation> {
        static DOCS: LazyLock<Documentation> = LazyLock::new(|| {
            Documentation::builder(
                DOC_SECTION_STRING,
                "Whether a valid SUS activity month lies between two constant bounds, both \
                 included, compared as text: sus_month(month) BETWEEN low AND high in one pass, \
                 NULL where sus_month is NULL. ebiq writes that form as this call.",
                "sus_month_between(der_activity_month, '202404', '202503')",
            )
            .with_argument("month", "text such as '202404'")
            .with_argument("low", "the first month counted (constant text)")
            .with_argument("high", "the last month counted (constant text)")
            .build()
        });
        Some(&DOCS)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{LargeStringArray, StringArray};
    use arrow::datatypes::{Field, Int32Type};
    use datafusion_common::config::ConfigOptions;

    use super::*;

    /// `sus_month(month) BETWEEN low AND high` as SQL means it, on the text.
    fn expected(month: Option<&str>, low: &str, high: &str) -> Option<bool> {
        let month = month.filter(|m| is_sus_month(m))?;
        Some(low.as_bytes() <= month.as_bytes() && month.as_bytes() <= high.as_bytes())
    }

    fn call(months: ArrayRef, low: &str, high: &str) -> Result<BooleanArray> {
        let text = |s: &str| ColumnarValue::Scalar(ScalarValue::Utf8(Some(s.to_owned())));
        let args = ScalarFunctionArgs {
            arg_fields: vec![
                Arc::new(Field::new("m", months.data_type().clone(), true)),
                Arc::new(Field::new("low", DataType::Utf8, false)),
                Arc::new(Field::new("high", DataType::Utf8, false)),
            ],
            number_rows: months.len(),
            args: vec![ColumnarValue::Array(months), text(low), text(high)],
            return_field: Arc::new(Field::new("out", DataType::Boolean, true)),
            config_options: Arc::new(ConfigOptions::new()),
        };
        let ColumnarValue::Array(got) = SusMonthBetween::new().invoke_with_args(args)? else {
            return exec_err!("sus_month_between gave no array");
        };
        Ok(got.as_boolean().clone())
    }

    /// The same months as each string type, a dictionary among them.
    fn encodings(months: &[Option<&str>]) -> Vec<ArrayRef> {
        let dictionary: arrow::array::DictionaryArray<Int32Type> = months.iter().copied().collect();
        vec![
            Arc::new(StringArray::from(months.to_vec())),
            Arc::new(LargeStringArray::from(months.to_vec())),
            Arc::new(StringViewArray::from(months.to_vec())),
            Arc::new(dictionary),
        ]
    }

    #[test]
    fn bounds_of_every_length_compare_as_text() -> Result<()> {
        let months = [
            Some("202403"),
            Some("202404"),
            Some("202412"),
            Some("202501"),
            Some("202413"),
            Some("2024-04"),
            Some(""),
            None,
        ];
        let bounds = [
            ("202404", "202412"),
            ("000000", "999999"),
            ("2024", "2024"),
            ("2024", "20241"),
            ("2024040", "2024121"),
            ("202404", "202404"),
            ("", ""),
            ("2025", "a"),
            ("202412", "202404"),
        ];
        for (low, high) in bounds {
            for array in encodings(&months) {
                let got = call(Arc::clone(&array), low, high)?;
                for (row, month) in months.iter().enumerate() {
                    let got = got.is_valid(row).then(|| got.value(row));
                    assert_eq!(
                        got,
                        expected(*month, low, high),
                        "{month:?} between {low:?} and {high:?}, {}",
                        array.data_type()
                    );
                }
            }
        }
        Ok(())
    }

    /// A NULL slot's view may hold a month's bytes (a NULL from a filter or a cast keeps them).
    #[test]
    fn a_null_whose_bytes_spell_a_month_stays_null() -> Result<()> {
        let (views, buffers, _) = StringViewArray::from(vec!["202404", "202404"]).into_parts();
        let months =
            StringViewArray::new(views, buffers, Some(NullBuffer::from(vec![true, false])));
        let got = call(Arc::new(months), "000000", "999999")?;
        assert!(got.is_valid(0) && got.value(0));
        assert!(got.is_null(1));
        Ok(())
    }

    #[test]
    fn bounds_must_be_constant_and_not_null() {
        let months: ArrayRef = Arc::new(StringArray::from(vec!["202404"]));
        let args = |low: ColumnarValue| ScalarFunctionArgs {
            arg_fields: ["m", "low", "high"]
                .map(|name| Arc::new(Field::new(name, DataType::Utf8, true)))
                .into(),
            number_rows: 1,
            args: vec![
                ColumnarValue::Array(Arc::clone(&months)),
                low,
                ColumnarValue::Scalar(ScalarValue::Utf8(Some("999999".into()))),
            ],
            return_field: Arc::new(Field::new("out", DataType::Boolean, true)),
            config_options: Arc::new(ConfigOptions::new()),
        };
        let null = ColumnarValue::Scalar(ScalarValue::Utf8(None));
        let column = ColumnarValue::Array(Arc::clone(&months));
        for (low, says) in [(null, "not NULL"), (column, "constant")] {
            let error = SusMonthBetween::new()
                .invoke_with_args(args(low))
                .expect_err("refused");
            assert!(error.to_string().contains(says), "{error}");
        }
    }

    proptest::proptest! {
        /// Months near and far from valid ones, bounds of any length around six bytes: every
        /// string type agrees with the plain test and comparison of the text.
        #[test]
        fn agrees_with_sus_month_between_as_sql_means_it(
            months in proptest::collection::vec(
                proptest::option::of("[0-9]{4}(0[0-9]|1[0-9])|[0-9/:a]{0,7}|.{0,14}"),
                0..40,
            ),
            low in "[0-9]{0,8}|[/0-9:a]{0,7}",
            high in "[0-9]{0,8}|[/0-9:a]{0,7}",
        ) {
            let months: Vec<Option<&str>> = months.iter().map(Option::as_deref).collect();
            for array in encodings(&months) {
                let got = call(array, &low, &high)
                    .map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
                for (row, month) in months.iter().enumerate() {
                    let got = got.is_valid(row).then(|| got.value(row));
                    proptest::prop_assert_eq!(got, expected(*month, &low, &high), "row {}", row);
                }
            }
        }
    }
}
