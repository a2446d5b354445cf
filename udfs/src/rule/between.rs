//! `value BETWEEN low AND high` over a rule's numeric expression, read straight from the columns'
//! value buffers. `ISNULL(a, b) BETWEEN low AND high` is `a BETWEEN low AND high` where `a` is not
//! NULL and `b BETWEEN low AND high` elsewhere, so no coalesced column is built.

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use arrow::buffer::{BooleanBuffer, Buffer, NullBuffer};
use arrow::compute::cast;
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use datafusion_common::Result;

use super::Number;

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
        DataType::Int8 => within(array.as_primitive::<Int8Type>().values(), low, high),
        DataType::Int16 => within(array.as_primitive::<Int16Type>().values(), low, high),
        DataType::Int32 => within(array.as_primitive::<Int32Type>().values(), low, high),
        DataType::Int64 => within(array.as_primitive::<Int64Type>().values(), low, high),
        DataType::UInt8 => within(array.as_primitive::<UInt8Type>().values(), low, high),
        DataType::UInt16 => within(array.as_primitive::<UInt16Type>().values(), low, high),
        DataType::UInt32 => within(array.as_primitive::<UInt32Type>().values(), low, high),
        DataType::UInt64 => within(array.as_primitive::<UInt64Type>().values(), low, high),
        DataType::Float32 => within(array.as_primitive::<Float32Type>().values(), low, high),
        DataType::Float64 => within(array.as_primitive::<Float64Type>().values(), low, high),
        // Text, decimals and the rest: as Arrow casts them (text that is not a number is NULL).
        _ => return in_range(&cast(array, &DataType::Float64)?, low, high),
    };
    Ok(BooleanArray::new(values, array.logical_nulls()))
}

fn within<T: AsF64>(values: &[T], low: f64, high: f64) -> BooleanBuffer {
    // A word per 64 values, built by iterating each chunk (no index to bounds-check) and with `&`,
    // not `&&` (no branch to mispredict), so that the compiler vectorises the loop.
    let words: Vec<u64> = values
        .chunks(64)
        .map(|chunk| {
            chunk.iter().enumerate().fold(0u64, |word, (bit, value)| {
                let value = value.as_f64();
                word | u64::from((low <= value) & (value <= high)) << bit
            })
        })
        .collect();
    BooleanBuffer::new(Buffer::from_vec(words), 0, values.len())
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

as_f64!(i8, i16, i32, i64, u8, u16, u32, u64, f32, f64);

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
