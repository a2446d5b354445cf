//! Test helpers: the same strings in every encoding the functions accept, and direct invocation.

#![allow(dead_code)]

use std::sync::Arc;

use arrow::array::{ArrayRef, DictionaryArray, LargeStringArray, StringArray, StringViewArray};
use arrow::datatypes::{Field, Int32Type};
use datafusion_common::config::ConfigOptions;
use datafusion_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl};
use ebiq_udfs::{EbiqOptions, NullMode};

/// The string encodings a column can arrive in.
pub const STRING_TYPES: [&str; 4] = ["Utf8", "LargeUtf8", "Utf8View", "Dictionary(Int32, Utf8)"];

pub fn strings(encoding: &str, values: &[Option<&str>]) -> ArrayRef {
    match encoding {
        "Utf8" => Arc::new(StringArray::from(values.to_vec())),
        "LargeUtf8" => Arc::new(LargeStringArray::from(values.to_vec())),
        "Utf8View" => Arc::new(StringViewArray::from(values.to_vec())),
        "Dictionary(Int32, Utf8)" => Arc::new(
            values
                .iter()
                .copied()
                .collect::<DictionaryArray<Int32Type>>(),
        ),
        other => panic!("unknown encoding {other}"),
    }
}

/// Calls `function` as DataFusion would, with `mode` as the session's `ebiq.null_mode`.
pub fn invoke(function: &dyn ScalarUDFImpl, args: Vec<ArrayRef>, mode: NullMode) -> ArrayRef {
    let rows = args.first().map_or(1, |a| a.len());
    invoke_values(
        function,
        args.into_iter().map(ColumnarValue::Array).collect(),
        rows,
        mode,
    )
}

/// Like [`invoke`], with arguments that may be scalars (as DataFusion passes literals).
pub fn invoke_values(
    function: &dyn ScalarUDFImpl,
    args: Vec<ColumnarValue>,
    rows: usize,
    mode: NullMode,
) -> ArrayRef {
    let types: Vec<_> = args.iter().map(|a| a.data_type()).collect();
    let arg_fields = types
        .iter()
        .enumerate()
        .map(|(i, t)| Arc::new(Field::new(format!("a{i}"), t.clone(), true)))
        .collect::<Vec<_>>();
    let return_type = function.return_type(&types).expect("a return type");
    let mut config = ConfigOptions::new();
    let options = EbiqOptions { null_mode: mode };
    config.extensions.insert(options);
    let result = function
        .invoke_with_args(ScalarFunctionArgs {
            args,
            arg_fields,
            number_rows: rows,
            return_field: Arc::new(Field::new("out", return_type, true)),
            config_options: Arc::new(config),
        })
        .expect("the function runs");
    result.into_array(rows).expect("an array")
}
