//! The resident population behind a generated dataset, in ONS's long form: one row per area,
//! year, sex and age band. Each commissioner's size follows its share of the generated activity
//! (so crude rates are plausible) with a fixed spread of ±20% (so rates differ between areas),
//! scaled to 100,000-1,500,000 people; its age and sex structure is England's, roughly.

use std::sync::Arc;

use anyhow::Result;
use datafusion::arrow::array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use ebiq_udfs::ESP2013;

use super::records::Population;

/// Percent of England's residents in each ESP 2013 band, and the share of them who are male.
const AGE_STRUCTURE: [(f64, f64); 19] = [
    (5.7, 0.512),
    (6.1, 0.512),
    (6.0, 0.512),
    (5.6, 0.513),
    (6.1, 0.508),
    (6.7, 0.500),
    (6.9, 0.497),
    (6.6, 0.497),
    (6.3, 0.497),
    (6.4, 0.494),
    (6.9, 0.493),
    (6.6, 0.492),
    (5.7, 0.488),
    (4.9, 0.481),
    (4.8, 0.470),
    (3.5, 0.455),
    (2.4, 0.430),
    (1.4, 0.390),
    (0.9, 0.300),
];

const SMALLEST: f64 = 100_000.0;
const LARGEST: f64 = 1_500_000.0;
/// Growth per year after the first.
const GROWTH: f64 = 0.005;

/// The population table's columns, as `population/` files should have them.
pub fn population_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("area_code", DataType::Utf8, false),
        Field::new("area_name", DataType::Utf8, false),
        Field::new("year", DataType::Int32, false),
        Field::new("sex", DataType::Utf8, false),
        Field::new("age", DataType::Utf8, false),
        Field::new("population", DataType::Int64, false),
    ]))
}

/// The population of every commissioner in each of `years`.
pub fn population_batch(population: &Population, years: &[i32]) -> Result<RecordBatch> {
    let shares = population.commissioner_shares();
    let largest_share = shares.iter().map(|(_, s)| *s).fold(0.0, f64::max);
    let smallest_share = shares.iter().map(|(_, s)| *s).fold(f64::INFINITY, f64::min);
    let structure_total: f64 = AGE_STRUCTURE.iter().map(|(p, _)| p).sum();
    let (mut codes, mut names, mut year_column) = (Vec::new(), Vec::new(), Vec::new());
    let (mut sexes, mut ages, mut people) = (Vec::new(), Vec::new(), Vec::new());
    for (index, (code, share)) in shares.iter().enumerate() {
        // Sizes spread on a log scale between the smallest and largest area, so the biggest
        // commissioner is 1.5M and the smallest 100k, then a fixed ±20% per area.
        let position =
            (share / smallest_share).ln() / (largest_share / smallest_share).ln().max(1e-9);
        let size = SMALLEST * (LARGEST / SMALLEST).powf(position);
        let spread = 0.8 + 0.4 * ((index * 37 % 41) as f64 / 40.0);
        let size = (size * spread).clamp(SMALLEST, LARGEST);
        for (offset, year) in years.iter().enumerate() {
            let grown = size * (1.0 + GROWTH).powi(i32::try_from(offset)?);
            for ((band, _), (percent, male)) in ESP2013.iter().zip(AGE_STRUCTURE) {
                let in_band = grown * percent / structure_total;
                for (sex, share) in [("1", male), ("2", 1.0 - male)] {
                    codes.push(code.clone());
                    names.push(format!("Commissioner {code}"));
                    year_column.push(*year);
                    sexes.push(sex);
                    ages.push(*band);
                    people.push((in_band * share).round() as i64);
                }
            }
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(codes)),
        Arc::new(StringArray::from(names)),
        Arc::new(Int32Array::from(year_column)),
        Arc::new(StringArray::from(sexes)),
        Arc::new(StringArray::from(ages)),
        Arc::new(Int64Array::from(people)),
    ];
    Ok(RecordBatch::try_new(population_schema(), columns)?)
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Int64Type;

    use super::*;

    #[test]
    fn every_commissioner_has_a_plausible_population_in_38_cells() -> Result<()> {
        let batch = population_batch(&Population::default(), &[2024])?;
        let codes = batch.column(0).as_string::<i32>();
        let people = batch.column(5).as_primitive::<Int64Type>();
        let mut totals = std::collections::BTreeMap::<&str, i64>::new();
        for row in 0..batch.num_rows() {
            *totals.entry(codes.value(row)).or_default() += people.value(row);
        }
        assert_eq!(totals.len(), 42);
        assert_eq!(batch.num_rows(), 42 * 19 * 2);
        for (code, total) in totals {
            assert!((99_000..=1_501_000).contains(&total), "{code}: {total}");
        }
        Ok(())
    }
}
