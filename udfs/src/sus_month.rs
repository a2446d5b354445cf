//! `sus_month(text)`: a SUS activity month (`yyyymm`) if the text is one, else NULL, so that a
//! report's month range never counts a malformed month such as `202413`. The column comes back in
//! its own string type with only its NULLs changed: every report query calls this on every row,
//! and copying each month into a new array cost more than testing it.

use arrow::array::{ArrayRef, AsArray, BooleanArray, StringViewArray};
use arrow::buffer::BooleanBuffer;
use arrow::compute::{not, nullif};
use arrow::datatypes::DataType;
use datafusion_common::{Result, ScalarValue, exec_err, plan_err};
use datafusion_expr::scalar_doc_sections::DOC_SECTION_STRING;
use datafusion_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use crate::strings::{is_string_type, test_strings};

/// Is `text` six digits, the last two a month from 01 to 12?
pub fn is_sus_month(text: &str) -> bool {
    is_sus_month_bytes(text.as_bytes())
}

/// Whether a string view (arrow's 16 bytes: the length, then a short string's bytes in place)
/// holds a SUS month. Six bytes always sit in the view, so no string buffer is read, and the six
/// are tested at once, without a branch per byte.
pub(crate) fn is_sus_month_view(view: u128) -> bool {
    const ZEROS: u64 = 0x3030_3030_3030;
    const HIGH_BITS: u64 = 0x8080_8080_8080;
    const PAST_NINE: u64 = 0x7676_7676_7676;
    let length = view as u32;
    let text = (view >> 32) as u64 & 0xFFFF_FFFF_FFFF;
    // A digit becomes 0 to 9, anything else 10 or more, or a byte with its high bit set. Adding
    // 0x76 to a byte of 0 to 0x7f sets its high bit exactly when it was 10 or more, and carries
    // into the next byte only from a byte whose high bit is already set.
    let values = text ^ ZEROS;
    let digits = (values.wrapping_add(PAST_NINE) | values) & HIGH_BITS == 0;
    let month = ((values >> 32) & 0xFF) * 10 + ((values >> 40) & 0xFF);
    (length == 6) & digits & (month.wrapping_sub(1) < 12)
}

fn is_sus_month_bytes(bytes: &[u8]) -> bool {
    bytes.len() == 6
        && bytes.iter().all(u8::is_ascii_digit)
        && matches!(
            (bytes[4], bytes[5]),
            (b'0', b'1'..=b'9') | (b'1', b'0'..=b'2')
        )
}

/// `months` with every value that is not a SUS month made NULL, nothing else changed.
fn valid_only(months: &ArrayRef) -> Result<ArrayRef> {
    if let Some(views) = months.as_string_view_opt() {
        return valid_views_only(months, views);
    }
    let valid = test_strings(months.as_ref(), None, |m: &str| is_sus_month(m))?;
    Ok(nullif(months.as_ref(), &not(&valid)?)?)
}

/// [`valid_only`] for string views, tested in place: every report query's month range calls this
/// on every row the run reads, and testing each row's view costs a fraction of reading it as a
/// `&str`.
fn valid_views_only(months: &ArrayRef, views: &StringViewArray) -> Result<ArrayRef> {
    let raw = views.views();
    let not_months = BooleanBuffer::collect_bool(raw.len(), |row| !is_sus_month_view(raw[row]));
    Ok(nullif(
        months.as_ref(),
        &BooleanArray::new(not_months, None),
    )?)
}

/// `sus_month(month)`: a valid SUS activity month (yyyymm) as it is, anything else NULL, in the
/// month's own string type.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SusMonth {
    signature: Signature,
}

impl Default for SusMonth {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl SusMonth {
    /// The function.
    pub fn new() -> Self {
        Self::default()
    }
}

impl ScalarUDFImpl for SusMonth {
    fn name(&self) -> &str {
        "sus_month"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types.first().cloned().unwrap_or(DataType::Utf8))
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [DataType::Null] => Ok(vec![DataType::Utf8]),
            [t] if is_string_type(t) => Ok(vec![t.clone()]),
            [t] => plan_err!("sus_month: the month must be text (yyyymm), got {t}"),
            _ => plan_err!("sus_month takes 1 argument, got {}", arg_types.len()),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [month] = args.args.as_slice() else {
            return exec_err!("sus_month takes 1 argument, got {}", args.args.len());
        };
        match month {
            ColumnarValue::Array(months) => Ok(ColumnarValue::Array(valid_only(months)?)),
            ColumnarValue::Scalar(scalar) => Ok(ColumnarValue::Scalar(
                ScalarValue::try_from_array(&valid_only(&scalar.to_array()?)?, 0)?,
            )),
        }
    }

    fn documentation(&self) -> Option<&Documentation> {
        static DOCS: std::sync::LazyLock<Documentation> = std::sync::LazyLock::new(|| {
            Documentation::builder(
                DOC_SECTION_STRING,
                "A SUS activity month as yyyymm (six digits, month 01 to 12), or NULL for anything \
                 else (202413, 2024-01, '', NULL), so a month range never counts a malformed month.",
                "sus_month(der_activity_month)",
            )
            .with_argument("month", "text such as '202404'")
            .with_sql_example(
                "```sql\nSELECT count(*) FROM opa WHERE sus_month(der_activity_month) IS NULL;\n```",
            )
            .build()
        });
        Some(&DOCS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn only_six_digits_with_a_real_month() {
        for good in ["202401", "202412", "199910", "000001"] {
            assert!(is_sus_month(good), "{good}");
        }
        for bad in [
            "202413",
            "202400",
            "2024-01",
            "20241",
            "2024011",
            "",
            "20240a",
            "２０２４０１",
        ] {
            assert!(!is_sus_month(bad), "{bad}");
        }
    }

    #[test]
    fn a_scalar_month_is_read_in_every_encoding() -> Result<()> {
        use arrow::datatypes::Field;
        use datafusion_common::config::ConfigOptions;
        use datafusion_expr::{ColumnarValue, ScalarFunctionArgs};

        let text = |s: &str| Some(s.to_owned());
        let months = [
            (ScalarValue::Utf8(text("202404")), Some("202404")),
            (ScalarValue::LargeUtf8(text("202413")), None),
            (ScalarValue::Utf8View(text("202412")), Some("202412")),
            (
                ScalarValue::Dictionary(
                    Box::new(DataType::Int32),
                    Box::new(ScalarValue::Utf8(text("202401"))),
                ),
                Some("202401"),
            ),
            (ScalarValue::Null, None),
        ];
        for (month, expected) in months {
            let args = ScalarFunctionArgs {
                arg_fields: vec![Arc::new(Field::new("m", month.data_type(), true))],
                args: vec![ColumnarValue::Scalar(month.clone())],
                number_rows: 1,
                return_field: Arc::new(Field::new("out", DataType::Utf8, true)),
                config_options: Arc::new(ConfigOptions::new()),
            };
            let ColumnarValue::Scalar(got) = SusMonth::new().invoke_with_args(args)? else {
                return exec_err!("sus_month gave no scalar for {month:?}");
            };
            assert_eq!(got.data_type(), month.data_type(), "the type of {month:?}");
            let got = crate::strings::scalar_str(&got)?;
            assert_eq!(got, expected, "{month:?}");
        }
        Ok(())
    }

    #[test]
    fn an_array_keeps_its_type_and_loses_only_bad_months() -> Result<()> {
        use arrow::array::{
            Array, ArrayRef, AsArray, DictionaryArray, LargeStringArray, StringArray,
            StringViewArray,
        };
        use arrow::datatypes::{Field, Int32Type};
        use datafusion_common::config::ConfigOptions;

        let months = [
            Some("202404"),
            Some("202413"),
            None,
            Some("a much longer text than twelve bytes"),
            Some("202412"),
        ];
        let expected = [Some("202404"), None, None, None, Some("202412")];
        let arrays: [ArrayRef; 4] = [
            Arc::new(StringArray::from(months.to_vec())),
            Arc::new(LargeStringArray::from(months.to_vec())),
            Arc::new(StringViewArray::from(months.to_vec())),
            Arc::new(months.into_iter().collect::<DictionaryArray<Int32Type>>()),
        ];
        for array in arrays {
            let data_type = array.data_type().clone();
            let args = ScalarFunctionArgs {
                arg_fields: vec![Arc::new(Field::new("m", data_type.clone(), true))],
                args: vec![ColumnarValue::Array(array)],
                number_rows: months.len(),
                return_field: Arc::new(Field::new("out", data_type.clone(), true)),
                config_options: Arc::new(ConfigOptions::new()),
            };
            let ColumnarValue::Array(got) = SusMonth::new().invoke_with_args(args)? else {
                return exec_err!("sus_month gave a scalar for an array");
            };
            assert_eq!(got.data_type(), &data_type);
            let text = arrow::compute::cast(&got, &DataType::Utf8)?;
            let text: Vec<Option<&str>> = text.as_string::<i32>().iter().collect();
            assert_eq!(text, expected, "{data_type}");
        }
        Ok(())
    }

    proptest::proptest! {
        /// The in-place test of string views agrees with the test of the text, on texts near a
        /// month (six bytes of digits and neighbours of digits, some multi-byte) and of every
        /// length either side of the views' 12 bytes held in place.
        #[test]
        fn views_are_tested_as_their_text_is(
            months in proptest::collection::vec(
                proptest::option::of("[0-9/:a１]{0,7}|[0-9]{4}(0[0-9]|1[0-9])|.{0,14}"),
                0..40,
            )
        ) {
            use arrow::array::{Array, StringViewArray};

            let views: ArrayRef = Arc::new(StringViewArray::from(months.clone()));
            let got = valid_only(&views).map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            let got = got.as_string_view();
            for (row, month) in months.iter().enumerate() {
                let expected = month.as_deref().filter(|m| is_sus_month(m));
                let kept = got.is_valid(row).then(|| got.value(row));
                proptest::prop_assert_eq!(kept, expected, "row {}", row);
            }
        }
    }
}
