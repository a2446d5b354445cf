//! Hive-style partition folders (`opa/der_activity_month=202404/part-0.parquet`): which columns a
//! table's folder layout gives, and of what type, so that they can be queried and so that
//! DataFusion can skip the folders a query's filter rules out.

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::DataType;

use crate::dataset::schema::{Kind, SusColumn};

/// A partition column as the folder names spell it, with the type its values are read as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionColumn {
    /// The key as the folders spell it (DataFusion matches it case-sensitively).
    pub name: String,
    /// Utf8, or Int64 when every value is a whole number and the column is not SUS text.
    pub data_type: DataType,
}

/// What a table's layout gives: its partition columns, and why a `key=value` layout was not used.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// The partition columns, outermost folder first; empty when the files are not partitioned.
    pub columns: Vec<PartitionColumn>,
    /// Why folders that look partitioned are not read as such, for stderr.
    pub warnings: Vec<String>,
}

/// The partition columns of a table whose files are at `relative_paths` (each split into its
/// folders and file name, relative to the table's folder), given the columns the files hold and
/// the table's SUS columns.
///
/// Every file must sit under the same `key=value` folders, in the same order; otherwise there are
/// no partition columns (and a warning says why), since DataFusion would silently skip the files
/// that do not fit. A key the files also hold as a column is not a partition column: the file's
/// values are the data.
pub fn layout(
    relative_paths: &[Vec<&str>],
    file_columns: &[&str],
    sus_columns: &[SusColumn],
) -> Layout {
    let mut layout = Layout::default();
    let Some(first) = relative_paths.first() else {
        return layout;
    };
    let keys_of = |segments: &[&str]| -> Vec<String> {
        let folders = &segments[..segments.len().saturating_sub(1)];
        folders
            .iter()
            .map_while(|folder| folder.split_once('=').map(|(key, _)| key.to_owned()))
            .collect()
    };
    let keys = keys_of(first);
    if keys.is_empty() {
        return layout;
    }
    for path in relative_paths {
        let folders = path.len().saturating_sub(1);
        if keys_of(path) != keys || folders != keys.len() {
            layout.warnings.push(format!(
                "the files are not all under the same key=value folders ({} and {} differ), so \
                 the folder names are not read as columns",
                first.join("/"),
                path.join("/")
            ));
            return layout;
        }
    }
    let mut values: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for path in relative_paths {
        for (depth, folder) in path.iter().take(keys.len()).enumerate() {
            let value = folder.split_once('=').map_or("", |(_, value)| value);
            values.entry(depth).or_default().push(value);
        }
    }
    for (depth, key) in keys.into_iter().enumerate() {
        if file_columns.iter().any(|c| c.eq_ignore_ascii_case(&key)) {
            layout.warnings.push(format!(
                "the files hold the column {key} as well as {key}= folders; the files' values are \
                 read, and the folders do not prune"
            ));
            continue;
        }
        let sus = sus_columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(&key));
        let data_type = infer_type(values.get(&depth).map_or(&[][..], Vec::as_slice), sus);
        layout.columns.push(PartitionColumn {
            name: key,
            data_type,
        });
    }
    layout
}

/// Int64 when every value is a whole number, unless the SUS column is text (a month such as
/// `202404` is compared as text by every query), else Utf8.
fn infer_type(values: &[&str], sus: Option<&SusColumn>) -> DataType {
    let sus_is_text = sus.is_some_and(|c| Kind::of(&c.data_type) == Kind::of(&DataType::Utf8));
    let whole_numbers = !values.is_empty() && values.iter().all(|v| v.parse::<i64>().is_ok());
    if whole_numbers && !sus_is_text {
        DataType::Int64
    } else {
        DataType::Utf8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::schema::OPA;

    fn paths<'a>(files: &[&'a str]) -> Vec<Vec<&'a str>> {
        files.iter().map(|f| f.split('/').collect()).collect()
    }

    #[test]
    fn a_month_folder_is_a_text_column_and_a_year_folder_a_number() {
        let files = paths(&[
            "year=2024/der_activity_month=202404/part-0.parquet",
            "year=2024/der_activity_month=202405/part-0.parquet",
            "year=2025/der_activity_month=202501/part-0.parquet",
        ]);
        let found = layout(&files, &["Der_Procedure_All"], OPA);
        assert_eq!(
            found.columns,
            vec![
                PartitionColumn {
                    name: "year".into(),
                    data_type: DataType::Int64
                },
                PartitionColumn {
                    name: "der_activity_month".into(),
                    data_type: DataType::Utf8
                },
            ]
        );
        assert!(found.warnings.is_empty());
    }

    #[test]
    fn any_value_that_is_not_a_whole_number_makes_text() {
        let files = paths(&["region=1/a.parquet", "region=north/b.parquet"]);
        assert_eq!(
            layout(&files, &[], OPA).columns[0].data_type,
            DataType::Utf8
        );
    }

    #[test]
    fn plain_folders_and_flat_files_have_no_partitions() {
        for files in [
            paths(&["a.parquet", "b.parquet"]),
            paths(&["2024/a.parquet"]),
            paths(&[]),
        ] {
            assert_eq!(layout(&files, &[], OPA), Layout::default());
        }
    }

    #[test]
    fn files_under_different_keys_are_not_partitioned_and_say_why() {
        let files = paths(&["year=2024/a.parquet", "month=202404/b.parquet"]);
        let found = layout(&files, &[], OPA);
        assert!(found.columns.is_empty());
        assert!(found.warnings[0].contains("month=202404/b.parquet"));

        let files = paths(&["year=2024/a.parquet", "year=2024/extra/b.parquet"]);
        assert!(layout(&files, &[], OPA).columns.is_empty());
    }

    #[test]
    fn a_key_the_files_also_hold_is_left_to_the_files() {
        let files = paths(&["Der_Activity_Month=202404/a.parquet"]);
        let found = layout(&files, &["der_activity_month", "sex"], OPA);
        assert!(found.columns.is_empty());
        assert!(found.warnings[0].contains("do not prune"));
    }
}
