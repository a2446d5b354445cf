//! `value BETWEEN low AND high` over a rule's numeric expression, read straight from the columns'
//! value buffers. `ISNULL(a, b) BETWEEN low AND high` is `a BETWEEN low AND high` where `a` is not
//! NULL and `b BETWEEN low AND high` elsewhere, so no coalesced column is built.

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use arrow::buffer::{BooleanBuffer, NullBuffer};
use arrow::compute::cast;
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use datafusion_common::Result;

use super::Number;
use crate::bits::bits_where;

/// Whether `number` lies in `low..=high` for each row; NULL where the number is NULL. Every
/// value is compared as an `f64`.
pub(super) fn between<'a>(
    number: &Number,
    column: &dyn Fn(usize) -> Result<&'a ArrayRef>,
    low: f64,
    high: f64,
) -> Result<BooleanArray> {
    match number {
        Number::Column(index) => in_range(column(*index)?, low, high),
        Number::IsNull(first, second) => {
            let first = between(first, column, low, high)?;
            let Some(first_valid) = first.nulls() else {
                return Ok(first);
            };
            let second = between(second, column, low, high)?;
            let first_valid = first_valid.inner();
            let values = &(first.values() & first_valid) | &(second.values() & &!first_valid);
            let nulls = second
                .nulls()
                .map(|second_valid| NullBuffer::new(first_valid | second_valid.inner()));
            Ok(BooleanArray::new(values, nulls))
        }
    }
}

fn in_range(array: &ArrayRef, low: f64, high: f64) -> Result<BooleanArray> {
    let values = match array.data_type() {
        DataType::Int8 => within_whole(array.as_primitive::<Int8Type>().values(), low, high),
        DataType::Int16 => within_whole(array.as_primitive::<Int16Type>().values(), low, high),
        DataType::Int32 => within_whole(array.as_primitive::<Int32Type>().values(), low, high),
        DataType::Int64 => within(array.as_primitive::<Int64Type>().values(), low, high),
        DataType::UInt8 => within_whole(array.as_primitive::<UInt8Type>().values(), low, high),
        DataType::UInt16 => within_whole(array.as_primitive::<UInt16Type>().values(), low, high),
        DataType::UInt32 => within_whole(array.as_primitive::<UInt32Type>().values(), low, high),
        DataType::UInt64 => within(array.as_primitive::<UInt64Type>().values(), low, high),
        DataType::Float32 => within(array.as_primitive::<Float32Type>().values(), low, high),
        DataType::Float64 => within(array.as_primitive::<Float64Type>().values(), low, high),
        // Text, decimals and the rest: as Arrow casts them (text that is not a number is NULL).
        _ => return in_range(&cast(array, &DataType::Float64)?, low, high),
    };
    Ok(BooleanArray::new(values, array.logical_nulls()))
}

fn within<T: AsF64>(values: &[T], low: f64, high: f64) -> BooleanBuffer {
    bits_where(values, |value| {
        let value = value.as_f64();
        (low <= value) & (value <= high)
    })
}

/// `within` for whole numbers of at most 32 bits, compared at their own width: each is exact as
/// an `f64`, so `low <= value <= high` holds exactly when `ceil(low) <= value <= floor(high)`, and
/// a vector compare then takes two to eight times the values of one over `f64`s.
fn within_whole<T: Whole>(values: &[T], low: f64, high: f64) -> BooleanBuffer {
    let (low, high) = (low.ceil(), high.floor());
    // Also no value when a bound is NaN, as no comparison with NaN holds.
    if low.is_nan() || high.is_nan() || low > high {
        return BooleanBuffer::new_unset(values.len());
    }
    // `as` saturates an infinite or far bound to i64's range; T's own range is then the limit.
    let (low, high) = ((low as i64).max(T::LEAST), (high as i64).min(T::MOST));
    if low > high {
        return BooleanBuffer::new_unset(values.len());
    }
    let (low, high) = (T::from_i64(low), T::from_i64(high));
    bits_where(values, |value| (low <= value) & (value <= high))
}

/// A native numeric value as an `f64`, as Arrow's cast to `Float64` gives it.
trait AsF64: Copy {
    fn as_f64(self) -> f64;
}

macro_rules! as_f64 {
    ($($native:ty),*) => {
        $(impl AsF64 for $native {
            #[inline]
            fn as_f64(self) -> f64 {
                self as f64
            }
        })*
    };
}

as_f64!(i64, u64, f32, f64);

/// A whole-number native type whose every value an `i64` holds.
trait Whole: Copy + PartialOrd {
    const LEAST: i64;
    const MOST: i64;
    /// `value`, which lies in `LEAST..=MOST`.
    fn from_i64(value: i64) -> Self;
}

macro_rules! whole {
    ($($native:ty),*) => {
        $(impl Whole for $native {
            const LEAST: i64 = <$native>::MIN as i64;
            const MOST: i64 = <$native>::MAX as i64;
            #[inline]
            fn from_i64(value: i64) -> Self {
                value as $native
            }
        })*
    };
}

whole!(i8, i16, i32, u8, u16, u32);

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        Float32Array, Float64Array, Int32Array, Int64Array, StringArray, UInt8Array,
    };
    use datafusion_common::exec_err;

    use super::*;

    /// `ISNULL(first, second)` as SQL Server reads it, then BETWEEN 19 AND 120.
    fn expected(first: Option<f64>, second: Option<f64>) -> Option<bool> {
        first.or(second).map(|age| (19.0..=120.0).contains(&age))
    }

    fn columns_of(
        first: &[Option<f64>],
        second: &[Option<f64>],
    ) -> Vec<(&'static str, [ArrayRef; 2])> {
        let ints = |values: &[Option<f64>]| {
            values
                .iter()
                .map(|v| v.map(|v| v as i64))
                .collect::<Vec<_>>()
        };
        vec![
            (
                "Int32",
                [first, second].map(|v| {
                    Arc::new(
                        ints(v)
                            .iter()
                            .map(|v| v.map(|v| v as i32))
                            .collect::<Int32Array>(),
                    ) as ArrayRef
                }),
            ),
            (
                "Int64",
                [first, second].map(|v| Arc::new(Int64Array::from(ints(v))) as ArrayRef),
            ),
            (
                "UInt8",
                [first, second].map(|v| {
                    Arc::new(
                        ints(v)
                            .iter()
                            .map(|v| v.map(|v| v as u8))
                            .collect::<UInt8Array>(),
                    ) as ArrayRef
                }),
            ),
            (
                "Float32",
                [first, second].map(|v| {
                    Arc::new(
                        v.iter()
                            .map(|v| v.map(|v| v as f32))
                            .collect::<Float32Array>(),
                    ) as ArrayRef
                }),
            ),
            (
                "Float64",
                [first, second].map(|v| Arc::new(Float64Array::from(v.to_vec())) as ArrayRef),
            ),
            (
                "Utf8",
                [first, second].map(|v| {
                    Arc::new(
                        v.iter()
                            .map(|v| v.map(|v| v.to_string()))
                            .collect::<StringArray>(),
                    ) as ArrayRef
                }),
            ),
        ]
    }

    #[test]
    fn coalesced_ages_are_in_range_inclusively_for_every_numeric_type() {
        let values = [
            None,
            Some(0.0),
            Some(18.0),
            Some(19.0),
            Some(45.0),
            Some(120.0),
            Some(121.0),
            Some(200.0),
        ];
        let (mut first, mut second) = (Vec::new(), Vec::new());
        for a in values {
            for b in values {
                first.push(a);
                second.push(b);
            }
        }
        let number = Number::IsNull(Box::new(Number::Column(0)), Box::new(Number::Column(1)));
        for (type_name, arrays) in columns_of(&first, &second) {
            let column = |index: usize| match arrays.get(index) {
                Some(array) => Ok(array),
                None => exec_err!("no column {index}"),
            };
            let result = between(&number, &column, 19.0, 120.0).expect("BETWEEN evaluates");
            for (row, (a, b)) in first.iter().zip(&second).enumerate() {
                let got = result.is_valid(row).then(|| result.value(row));
                assert_eq!(got, expected(*a, *b), "{type_name}: ISNULL({a:?}, {b:?})");
            }
        }
    }

    #[test]
    fn whole_numbers_meet_fractional_infinite_nan_and_far_bounds_as_f64s_would() {
        let ints = [
            i32::MIN,
            -300,
            -1,
            0,
            18,
            19,
            20,
            120,
            121,
            255,
            256,
            70_000,
            i32::MAX,
        ];
        let bounds = [
            (19.0, 120.0),
            (18.5, 120.5),
            (19.5, 19.7),
            (120.0, 19.0),
            (f64::NEG_INFINITY, 0.0),
            (0.0, f64::INFINITY),
            (f64::NAN, 120.0),
            (19.0, f64::NAN),
            (-1e300, 1e300),
            (-1000.0, -500.0),
            (256.0, 1e12),
        ];
        for (low, high) in bounds {
            let expected = |value: f64| low <= value && value <= high;
            let int32 = within_whole(&ints, low, high);
            let uint8: Vec<u8> = ints.iter().filter_map(|&v| u8::try_from(v).ok()).collect();
            let int8: Vec<i8> = ints.iter().filter_map(|&v| i8::try_from(v).ok()).collect();
            for (got, values) in [
                (int32, ints.map(f64::from).to_vec()),
                (
                    within_whole(&uint8, low, high),
                    uint8.iter().map(|&v| f64::from(v)).collect(),
                ),
                (
                    within_whole(&int8, low, high),
                    int8.iter().map(|&v| f64::from(v)).collect(),
                ),
            ] {
                let want: Vec<bool> = values.iter().map(|&v| expected(v)).collect();
                assert_eq!(got.iter().collect::<Vec<_>>(), want, "{low}..={high}");
            }
        }
    }

    #[test]
    fn fractional_ages_compare_as_numbers() {
        let ages: ArrayRef = Arc::new(Float64Array::from(vec![
            Some(18.9),
            Some(19.0),
            Some(120.5),
            Some(-1.0),
        ]));
        let column = |_: usize| Ok(&ages);
        let result = between(&Number::Column(0), &column, 19.0, 120.0).expect("BETWEEN evaluates");
        assert_eq!(result, BooleanArray::from(vec![false, true, false, false]));
    }
}
