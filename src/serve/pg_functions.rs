//! Functions clients call when they connect or reflect a table, answered as PostgreSQL answers them
//! where DataFusion's answer (or lack of one) would stop the client.

use std::sync::Arc;

use datafusion::arrow::array::{Int32Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::exec_err;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility, create_udf,
};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;

/// The PostgreSQL version ebiq's catalogue and wire protocol follow (`pgwire`'s).
const POSTGRES_VERSION: &str = "16.6";

/// What `version()` returns: SQLAlchemy, dbplyr and others read the server's version from its
/// `PostgreSQL N.N` prefix and refuse a server whose text lacks it (DataFusion's says
/// `Apache DataFusion ...`).
pub(super) fn version_text() -> String {
    format!(
        "PostgreSQL {POSTGRES_VERSION} (ebiq {} on Apache DataFusion {})",
        env!("CARGO_PKG_VERSION"),
        datafusion::DATAFUSION_VERSION
    )
}

/// The oids of the types ebiq's results have, and of the names clients look up at start-up, by
/// every name PostgreSQL's `to_regtype` takes for them (its catalogue's numbers, fixed since 8.x).
const TYPE_OIDS: [(&str, i32); 27] = [
    ("bool", 16),
    ("boolean", 16),
    ("bytea", 17),
    ("char", 18),
    ("name", 19),
    ("int8", 20),
    ("bigint", 20),
    ("int2", 21),
    ("smallint", 21),
    ("int4", 23),
    ("integer", 23),
    ("int", 23),
    ("text", 25),
    ("oid", 26),
    ("json", 114),
    ("float4", 700),
    ("real", 700),
    ("float8", 701),
    ("double precision", 701),
    ("varchar", 1043),
    ("character varying", 1043),
    ("date", 1082),
    ("timestamp", 1114),
    ("timestamptz", 1184),
    ("interval", 1186),
    ("numeric", 1700),
    ("jsonb", 3802),
];

/// `to_regtype(name)`: a type's oid, or NULL for a type ebiq does not have (psycopg's
/// `TypeInfo.fetch`, which SQLAlchemy calls at connect time for `hstore`, relies on the NULL).
fn to_regtype(name: &str) -> Option<i32> {
    let name = name
        .trim()
        .trim_start_matches("pg_catalog.")
        .to_ascii_lowercase();
    TYPE_OIDS
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, oid)| *oid)
}

/// `json_build_object(key, value, ...)` as JSON text: SQLAlchemy's column reflection builds each
/// identity column's options with it. Keys are text; values keep their JSON kind (numbers,
/// booleans, NULL as `null`), everything else becomes a JSON string.
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonBuildObject {
    signature: Signature,
}

impl ScalarUDFImpl for JsonBuildObject {
    fn name(&self) -> &str {
        "json_build_object"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        if !args.args.len().is_multiple_of(2) {
            return exec_err!("json_build_object takes keys and values in pairs");
        }
        let columns = ColumnarValue::values_to_arrays(&args.args)?;
        let objects: datafusion::common::Result<StringArray> = (0..args.number_rows)
            .map(|row| {
                let mut object = serde_json::Map::new();
                for pair in columns.chunks(2) {
                    let key = ScalarValue::try_from_array(&pair[0], row)?;
                    let value = ScalarValue::try_from_array(&pair[1], row)?;
                    object.insert(json_key(&key), json_value(&value));
                }
                Ok(Some(serde_json::Value::Object(object).to_string()))
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(objects?)))
    }
}

/// A function that answers NULL text whatever its arguments, for catalogue questions whose
/// answer in ebiq is always "none".
#[derive(Debug, PartialEq, Eq, Hash)]
struct NullText {
    name: &'static str,
    signature: Signature,
}

impl ScalarUDFImpl for NullText {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        _args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)))
    }
}

/// PostgreSQL's settings that clients read with `current_setting` (SQLAlchemy's table reflection
/// reads `default_table_access_method`), with the values a PostgreSQL server like ebiq's has.
const POSTGRES_SETTINGS: [(&str, &str); 10] = [
    ("server_version", POSTGRES_VERSION),
    ("server_version_num", "160006"),
    ("server_encoding", "UTF8"),
    ("client_encoding", "UTF8"),
    ("default_table_access_method", "heap"),
    ("standard_conforming_strings", "on"),
    ("integer_datetimes", "on"),
    ("max_identifier_length", "63"),
    ("search_path", "public"),
    ("datestyle", "ISO, MDY"),
];

/// `current_setting(name[, missing_ok])`: one of [`POSTGRES_SETTINGS`], or the connection's value
/// of a DataFusion or ebiq setting (`current_setting('ebiq.null_mode')`); an unknown name is an
/// error, or NULL with `missing_ok`, as in PostgreSQL.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CurrentSetting {
    signature: Signature,
}

impl ScalarUDFImpl for CurrentSetting {
    fn name(&self) -> &str {
        "current_setting"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let (ColumnarValue::Scalar(name), missing_ok) = (&args.args[0], args.args.get(1)) else {
            return exec_err!("current_setting takes a setting's name as a constant");
        };
        let missing_ok = matches!(
            missing_ok,
            Some(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))))
        );
        let Some(name) = name.try_as_str().flatten() else {
            return Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)));
        };
        let lower = name.to_ascii_lowercase();
        let value = match POSTGRES_SETTINGS.iter().find(|(known, _)| *known == lower) {
            Some((_, value)) => Some(Some((*value).to_owned())),
            None => args
                .config_options
                .entries()
                .into_iter()
                .find(|entry| entry.key.eq_ignore_ascii_case(name))
                .map(|entry| entry.value),
        };
        match value {
            Some(value) => Ok(ColumnarValue::Scalar(ScalarValue::Utf8(value))),
            None if missing_ok => Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None))),
            None => exec_err!("unrecognized configuration parameter \"{name}\""),
        }
    }
}

fn json_key(key: &ScalarValue) -> String {
    match key {
        ScalarValue::Utf8(Some(text))
        | ScalarValue::LargeUtf8(Some(text))
        | ScalarValue::Utf8View(Some(text)) => text.clone(),
        other => other.to_string(),
    }
}

fn json_value(value: &ScalarValue) -> serde_json::Value {
    use serde_json::Value;
    if value.is_null() {
        return Value::Null;
    }
    match value {
        ScalarValue::Boolean(Some(b)) => Value::Bool(*b),
        ScalarValue::Int8(Some(n)) => Value::from(*n),
        ScalarValue::Int16(Some(n)) => Value::from(*n),
        ScalarValue::Int32(Some(n)) => Value::from(*n),
        ScalarValue::Int64(Some(n)) => Value::from(*n),
        ScalarValue::UInt8(Some(n)) => Value::from(*n),
        ScalarValue::UInt16(Some(n)) => Value::from(*n),
        ScalarValue::UInt32(Some(n)) => Value::from(*n),
        ScalarValue::UInt64(Some(n)) => Value::from(*n),
        ScalarValue::Float32(Some(x)) => Value::from(f64::from(*x)),
        ScalarValue::Float64(Some(x)) => Value::from(*x),
        other => Value::String(json_key(other)),
    }
}

/// Registers `version()`, `to_regtype(name)`, `json_build_object(...)` and
/// [`CurrentSetting`],
/// `pg_get_indexdef(index[, column, pretty])` (always NULL: ebiq's tables have no indexes, and
/// the catalogue's own indexes have no definition to show; SQLAlchemy's reflection asks for
/// each indexed expression's),
/// `pg_get_serial_sequence(table, column)`
/// (always NULL: ebiq's tables have no sequences, and SQLAlchemy's reflection asks for each
/// column's).
pub(super) fn register(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::new_from_impl(JsonBuildObject {
        signature: Signature::variadic_any(Volatility::Stable),
    }));
    ctx.register_udf(create_udf(
        "to_regtype",
        vec![DataType::Utf8],
        DataType::Int32,
        Volatility::Stable,
        Arc::new(|args| {
            let names = match &args[0] {
                ColumnarValue::Array(array) => array.clone(),
                ColumnarValue::Scalar(scalar) => scalar.to_array()?,
            };
            let names = datafusion::common::cast::as_string_array(&names)?;
            let oids: Int32Array = names.iter().map(|name| name.and_then(to_regtype)).collect();
            Ok(ColumnarValue::Array(Arc::new(oids)))
        }),
    ));
    let version = ScalarValue::Utf8(Some(version_text()));
    ctx.register_udf(create_udf(
        "version",
        vec![],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(move |_| Ok(ColumnarValue::Scalar(version.clone()))),
    ));
    // Everything in ebiq's catalogue is on the search path.
    for name in [
        "pg_collation_is_visible",
        "pg_type_is_visible",
        "pg_function_is_visible",
    ] {
        if ctx.udf(name).is_err() {
            ctx.register_udf(create_udf(
                name,
                vec![DataType::Int64],
                DataType::Boolean,
                Volatility::Stable,
                Arc::new(|_| Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))))),
            ));
        }
    }
    ctx.register_udf(ScalarUDF::new_from_impl(CurrentSetting {
        signature: Signature::one_of(
            vec![
                TypeSignature::String(1),
                TypeSignature::Exact(vec![DataType::Utf8, DataType::Boolean]),
            ],
            Volatility::Stable,
        ),
    }));
    ctx.register_udf(ScalarUDF::new_from_impl(NullText {
        name: "pg_get_indexdef",
        signature: Signature::variadic_any(Volatility::Stable),
    }));
    ctx.register_udf(ScalarUDF::new_from_impl(NullText {
        name: "pg_get_serial_sequence",
        signature: Signature::any(2, Volatility::Stable),
    }));
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, AsArray};

    use super::*;

    async fn single_text(ctx: &SessionContext, sql: &str) -> Option<String> {
        let batches = ctx
            .sql(sql)
            .await
            .expect("plans")
            .collect()
            .await
            .expect("runs");
        let column = batches[0].column(0).as_string_opt::<i32>().cloned();
        let column = column.expect("a Utf8 column");
        (!column.is_null(0)).then(|| column.value(0).to_owned())
    }

    #[tokio::test]
    async fn version_reads_as_postgres_and_sequences_and_indexes_are_null() {
        let ctx = SessionContext::new();
        register(&ctx);
        let version = single_text(&ctx, "SELECT version()").await;
        assert!(
            version
                .as_deref()
                .is_some_and(|v| v.starts_with("PostgreSQL 16.6 ")),
            "{version:?}"
        );
        let sequence = single_text(&ctx, "SELECT pg_get_serial_sequence('opa', 'opa_ident')").await;
        assert_eq!(sequence, None);
        let index = single_text(&ctx, "SELECT pg_get_indexdef(2836, 1, true)").await;
        assert_eq!(index, None);
    }

    #[tokio::test]
    async fn json_objects_keep_each_value_s_kind() {
        let ctx = SessionContext::new();
        register(&ctx);
        let object = single_text(
            &ctx,
            "SELECT json_build_object('always', true, 'start', CAST(1 AS BIGINT), 'name', 'a\"b', \
             'none', NULL)",
        )
        .await;
        assert_eq!(
            object.as_deref(),
            Some(r#"{"always":true,"name":"a\"b","none":null,"start":1}"#)
        );
    }

    #[tokio::test]
    async fn settings_read_as_postgres_and_the_session_have_them() {
        let ctx = SessionContext::new();
        register(&ctx);
        let method = single_text(
            &ctx,
            "SELECT current_setting('default_table_access_method')",
        )
        .await;
        assert_eq!(method.as_deref(), Some("heap"));
        let batch = single_text(
            &ctx,
            "SELECT current_setting('datafusion.execution.batch_size')",
        )
        .await;
        assert_eq!(batch.as_deref(), Some("8192"));
        let missing = single_text(&ctx, "SELECT current_setting('no_such', true)").await;
        assert_eq!(missing, None);
        let error = ctx
            .sql("SELECT current_setting('no_such')")
            .await
            .expect("plans")
            .collect()
            .await
            .expect_err("an unknown setting is an error");
        assert!(
            error
                .to_string()
                .contains("unrecognized configuration parameter \"no_such\""),
            "{error}"
        );
    }

    #[test]
    fn type_names_resolve_as_postgres_resolves_them() {
        assert_eq!(to_regtype("int4"), Some(23));
        assert_eq!(to_regtype(" pg_catalog.TEXT"), Some(25));
        assert_eq!(to_regtype("double precision"), Some(701));
        assert_eq!(to_regtype("hstore"), None);
    }
}
