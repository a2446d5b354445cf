//! NHS small-number suppression for publishable outputs (`ebiq report --suppress`).
//!
//! Every integer column of a result is a count. A count from 1 to 7 is replaced by `*`; every other
//! count is rounded to the nearest 5 (0 stays 0). Secondary suppression then makes sure no `*` can
//! be recovered by subtraction from a total: the text columns are the table's dimensions (such as
//! provider and month), and for each dimension the cells that agree on all the other dimensions
//! add up to a total someone could publish (all providers in a month; all months of a provider;
//! with one dimension, the whole column). Wherever such a group holds exactly one `*`, its smallest
//! other count is suppressed too, and this repeats until no group holds a lone `*`. A fractional
//! column (a rate) is `*` in any row where a count was suppressed, and otherwise rounded to 3
//! decimal places. NULLs stay NULL. The suppressed columns are text.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, Result};
use datafusion::arrow::array::{ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, SchemaRef};
use datafusion::arrow::util::display::array_value_to_string;

/// The smallest count published (rounded); counts from 1 up to it are suppressed outright.
pub const SMALLEST_PUBLISHED: i64 = 8;
/// Published counts are rounded to a multiple of this.
pub const ROUNDING: i64 = 5;

/// Suppresses every count column of a result (see the module documentation). `declared` names
/// the dimension columns when the query declares them (`-- @dimensions provider, month`); its
/// other text columns are then values derived from the counts (a significance, a special cause),
/// shown as `*` in a row with a suppressed count. Without it every text column is a dimension.
pub fn suppress(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    declared: Option<&[String]>,
) -> Result<(SchemaRef, RecordBatch)> {
    let batch = concat_batches(schema, batches).context("cannot gather the result to suppress")?;
    let rows = batch.num_rows();
    let is_dimension = |field: &Field| {
        !field.data_type().is_numeric()
            && declared
                .is_none_or(|names| names.iter().any(|n| n.eq_ignore_ascii_case(field.name())))
    };
    let dimensions: Vec<Vec<String>> = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .filter(|(field, _)| is_dimension(field))
        .map(|(_, column)| {
            (0..rows)
                .map(|row| array_value_to_string(column, row).unwrap_or_default())
                .collect()
        })
        .collect();

    let mut suppressed_rows = vec![false; rows];
    let mut counts = HashMap::new();
    for (index, field) in schema.fields().iter().enumerate() {
        if field.data_type().is_integer() {
            let values = cast(batch.column(index), &DataType::Int64)?;
            let values: Vec<Option<i64>> = values.as_primitive::<Int64Type>().iter().collect();
            let hidden = suppressed_cells(&values, &dimensions);
            for (row, &hide) in hidden.iter().enumerate() {
                suppressed_rows[row] |= hide;
            }
            counts.insert(index, (values, hidden));
        }
    }

    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (index, field) in schema.fields().iter().enumerate() {
        let data_type = field.data_type();
        let text: Option<StringArray> = if let Some((values, hidden)) = counts.get(&index) {
            Some(
                values
                    .iter()
                    .zip(hidden)
                    .map(|(value, &hide)| value.map(|v| published(v, hide)))
                    .collect(),
            )
        } else if data_type.is_floating() || matches!(data_type, DataType::Decimal128(..)) {
            let values = cast(batch.column(index), &DataType::Float64)?;
            Some(
                values
                    .as_primitive::<Float64Type>()
                    .iter()
                    .zip(&suppressed_rows)
                    .map(|(value, &hide)| {
                        value.map(|v| {
                            if hide {
                                "*".to_owned()
                            } else {
                                format!("{v:.3}")
                            }
                        })
                    })
                    .collect(),
            )
        } else if !is_dimension(field) && !data_type.is_numeric() {
            let values = cast(batch.column(index), &DataType::Utf8)?;
            Some(
                values
                    .as_string::<i32>()
                    .iter()
                    .zip(&suppressed_rows)
                    .map(|(value, &hide)| {
                        value.map(|v| if hide { "*".to_owned() } else { v.to_owned() })
                    })
                    .collect(),
            )
        } else {
            None
        };
        match text {
            Some(text) => {
                fields.push(Field::new(field.name(), DataType::Utf8, true));
                columns.push(Arc::new(text));
            }
            None => {
                fields.push(field.as_ref().clone());
                columns.push(Arc::clone(batch.column(index)));
            }
        }
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
    Ok((schema, batch))
}

fn published(count: i64, hidden: bool) -> String {
    if hidden {
        return "*".to_owned();
    }
    let rounded = (count + ROUNDING / 2).div_euclid(ROUNDING) * ROUNDING;
    rounded.to_string()
}

/// Which cells of one count column are `*`: the primary ones, then the secondary ones.
fn suppressed_cells(values: &[Option<i64>], dimensions: &[Vec<String>]) -> Vec<bool> {
    let mut hidden: Vec<bool> = values
        .iter()
        .map(|v| v.is_some_and(|v| (1..SMALLEST_PUBLISHED).contains(&v)))
        .collect();
    let groupings: Vec<Vec<Vec<usize>>> = (0..dimensions.len().max(1))
        .map(|across| groups(values.len(), dimensions, across))
        .collect();
    loop {
        let mut changed = false;
        for group in groupings.iter().flatten() {
            let lone = group.iter().filter(|&&row| hidden[row]).count() == 1;
            if !lone {
                continue;
            }
            let smallest = group
                .iter()
                .copied()
                .filter(|&row| !hidden[row])
                .filter_map(|row| values[row].map(|v| (v, row)))
                .min();
            if let Some((_, row)) = smallest {
                hidden[row] = true;
                changed = true;
            }
        }
        if !changed {
            return hidden;
        }
    }
}

/// The rows that agree on every dimension but `across`: the cells one total adds up.
fn groups(rows: usize, dimensions: &[Vec<String>], across: usize) -> Vec<Vec<usize>> {
    let mut by_key: HashMap<Vec<&str>, Vec<usize>> = HashMap::new();
    for row in 0..rows {
        let key = dimensions
            .iter()
            .enumerate()
            .filter(|&(d, _)| d != across)
            .map(|(_, values)| values[row].as_str())
            .collect();
        by_key.entry(key).or_default().push(row);
    }
    let mut groups: Vec<_> = by_key.into_values().collect();
    groups.sort();
    groups
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Float64Array, Int64Array};

    use super::*;

    fn table(providers: &[&str], months: &[&str], counts: &[i64]) -> (SchemaRef, RecordBatch) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("provider", DataType::Utf8, false),
            Field::new("month", DataType::Utf8, false),
            Field::new("flagged", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from(providers.to_vec())),
                Arc::new(StringArray::from(months.to_vec())),
                Arc::new(Int64Array::from(counts.to_vec())),
            ],
        )
        .expect("a valid value");
        (schema, batch)
    }

    fn published_column(schema: &SchemaRef, batch: &RecordBatch, name: &str) -> Vec<String> {
        let (schema, batch) =
            suppress(schema, std::slice::from_ref(batch), None).expect("suppressed");
        let index = schema.index_of(name).expect("the column is in the result");
        batch
            .column(index)
            .as_string::<i32>()
            .iter()
            .map(|v| v.unwrap_or("NULL").to_owned())
            .collect()
    }

    #[test]
    fn primary_suppression_and_rounding() {
        // One dimension: the column's total is the only total, and every value is in it.
        let counts = [0, 1, 7, 8, 12, 13, 1002];
        let schema = Arc::new(Schema::new(vec![
            Field::new("month", DataType::Utf8, false),
            Field::new("n", DataType::Int64, false),
        ]));
        let months = ["a", "b", "c", "d", "e", "f", "g"];
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from(months.to_vec())),
                Arc::new(Int64Array::from(counts.to_vec())),
            ],
        )
        .expect("a valid value");
        // Two primary `*` already protect each other from the column total.
        assert_eq!(
            published_column(&schema, &batch, "n"),
            ["0", "*", "*", "10", "10", "15", "1000"]
        );
    }

    #[test]
    fn a_lone_star_in_a_column_takes_the_smallest_other_count_with_it() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("month", DataType::Utf8, false),
            Field::new("n", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from(vec!["a", "b", "c"])),
                Arc::new(Int64Array::from(vec![40, 3, 20])),
            ],
        )
        .expect("a valid value");
        assert_eq!(published_column(&schema, &batch, "n"), ["40", "*", "*"]);
    }

    #[test]
    fn secondary_suppression_covers_row_and_column_totals() {
        // Hand-worked provider x month table:
        //          m1   m2   m3
        //   P     100    5   50
        //   Q      30   60   20
        //   R      40   70   90
        // 5 is primary. Month m2 then holds a lone `*`: its smallest other count, Q m2 = 60, goes.
        // Provider P holds a lone `*`: its smallest other, P m3 = 50, goes. Now Q has a lone `*`
        // (m2): Q m3 = 20 goes. m3 has P and Q suppressed, m2 has P and Q: every total is safe.
        let (schema, batch) = table(
            &["P", "P", "P", "Q", "Q", "Q", "R", "R", "R"],
            &["m1", "m2", "m3", "m1", "m2", "m3", "m1", "m2", "m3"],
            &[100, 5, 50, 30, 60, 20, 40, 70, 90],
        );
        assert_eq!(
            published_column(&schema, &batch, "flagged"),
            ["100", "*", "*", "30", "*", "*", "40", "70", "90"]
        );
    }

    #[test]
    fn rates_in_a_suppressed_row_are_suppressed_and_nulls_stay_null() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("provider", DataType::Utf8, false),
            Field::new("flagged", DataType::Int64, true),
            Field::new("share", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from(vec!["P", "Q", "R", "S"])),
                Arc::new(Int64Array::from(vec![Some(2), Some(30), Some(44), None])),
                Arc::new(Float64Array::from(vec![
                    Some(0.5),
                    Some(0.25),
                    Some(0.123456),
                    None,
                ])),
            ],
        )
        .expect("a valid value");
        assert_eq!(
            published_column(&schema, &batch, "flagged"),
            ["*", "*", "45", "NULL"]
        );
        assert_eq!(
            published_column(&schema, &batch, "share"),
            ["*", "*", "0.123", "NULL"]
        );
    }

    #[test]
    fn declared_dimensions_leave_other_text_as_derived_values() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("commissioner", DataType::Utf8, false),
            Field::new("flagged", DataType::Int64, false),
            Field::new("compared", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from(vec!["A", "B", "C", "D"])),
                Arc::new(Int64Array::from(vec![3, 40, 52, 61])),
                Arc::new(StringArray::from(vec![
                    "lower", "similar", "higher", "similar",
                ])),
            ],
        )
        .expect("a valid value");
        let declared = ["commissioner".to_owned()];
        let (schema, batch) = suppress(&schema, std::slice::from_ref(&batch), Some(&declared))
            .expect("a valid value");
        let column = |name: &str| -> Vec<String> {
            let index = schema.index_of(name).expect("the column is in the result");
            batch
                .column(index)
                .as_string::<i32>()
                .iter()
                .map(|v| v.unwrap_or("NULL").to_owned())
                .collect()
        };
        // 3 is primary; as the one * of the column's total, the smallest other (40) goes too.
        assert_eq!(column("flagged"), ["*", "*", "50", "60"]);
        assert_eq!(column("compared"), ["*", "*", "higher", "similar"]);
        assert_eq!(column("commissioner"), ["A", "B", "C", "D"]);
    }
}
