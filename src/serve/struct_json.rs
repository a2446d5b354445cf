//! Struct results (`wilson()`, `dsr()`, `byar()`, the `..._explain()` functions) as JSON text.
//! pgwire would send them as PostgreSQL records, `(0.3,0.107,0.603)`, which loses the field names
//! and which few clients parse; `{"value":0.3,"lower":0.107,"upper":0.603}` is what R, Python and
//! Power BI read. The query's plan gets a projection on top, so its row description says `text`.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::arrow::json::{LineDelimitedWriter, WriterBuilder};
use datafusion::common::{DataFusionError, Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, LogicalPlanBuilder, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement;

use super::respond::PlanOf;

/// `struct_json(s)`: a struct value as a JSON object (NULL fields as `null`), NULL for NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct StructJson {
    signature: Signature,
}

impl StructJson {
    pub(super) fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(Self {
            signature: Signature::any(1, Volatility::Immutable),
        })
    }
}

impl ScalarUDFImpl for StructJson {
    fn name(&self) -> &str {
        "struct_json"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [DataType::Struct(_)] => Ok(DataType::Utf8),
            other => exec_err!("struct_json takes a struct, not {other:?}"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        Ok(ColumnarValue::Array(to_json(&arrays[0])?))
    }
}

/// Each struct of `array` as a JSON object.
fn to_json(array: &ArrayRef) -> Result<ArrayRef> {
    let structs = array.as_struct();
    let schema = Arc::new(Schema::new(structs.fields().clone()));
    // Struct-level NULLs are put back below; the fields alone make the rows.
    let rows = RecordBatch::try_new(schema, structs.columns().to_vec())?;
    let mut writer: LineDelimitedWriter<Vec<u8>> = WriterBuilder::new()
        .with_explicit_nulls(true)
        .build(Vec::new());
    writer.write(&rows)?;
    writer.finish()?;
    let text = String::from_utf8(writer.into_inner())
        .map_err(|error| DataFusionError::External(Box::new(error)))?;
    // One object a line, in the struct's field order (a JSON string cannot hold a raw newline).
    let json: StringArray = text
        .lines()
        .enumerate()
        .map(|(row, object)| (!structs.is_null(row)).then_some(object))
        .collect();
    Ok(Arc::new(json))
}

/// `plan` with every struct column turned into JSON text, if it has one.
fn with_structs_as_json(plan: LogicalPlan) -> Result<Option<LogicalPlan>> {
    let schema = plan.schema().clone();
    if !schema
        .fields()
        .iter()
        .any(|field| matches!(field.data_type(), DataType::Struct(_)))
    {
        return Ok(None);
    }
    let udf = Arc::new(StructJson::udf());
    let columns: Vec<Expr> = schema
        .iter()
        .map(|(qualifier, field)| {
            let column = Expr::Column(datafusion::common::Column::new(
                qualifier.cloned(),
                field.name(),
            ));
            match field.data_type() {
                DataType::Struct(_) => udf.call(vec![column]).alias(field.name()),
                _ => column,
            }
        })
        .collect();
    Ok(Some(
        LogicalPlanBuilder::from(plan).project(columns)?.build()?,
    ))
}

/// Plans queries whose results have struct columns, with those as JSON; any other statement runs
/// as usual.
#[derive(Debug)]
pub(super) struct StructsAsJson;

#[async_trait]
impl PlanOf for StructsAsJson {
    async fn plan_of(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
    ) -> Option<Result<LogicalPlan>> {
        if !matches!(statement, Statement::Query(_)) {
            return None;
        }
        let plan = ctx
            .state()
            .statement_to_plan(DfStatement::Statement(Box::new(statement.clone())))
            .await;
        match plan.and_then(with_structs_as_json) {
            Ok(Some(plan)) => Some(Ok(plan)),
            Ok(None) => None,
            // Let the usual path plan it again and report its error as it does.
            Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn struct_columns_become_json_objects_and_others_stay() {
        let ctx = SessionContext::new();
        let plan = ctx
            .state()
            .create_logical_plan(
                "SELECT 'RXH' AS provider, named_struct('value', 0.3, 'lower', CAST(NULL AS DOUBLE)) AS w \
                 UNION ALL SELECT 'RA0', CASE WHEN false THEN \
                     named_struct('value', 0.3, 'lower', CAST(NULL AS DOUBLE)) END",
            )
            .await
            .expect("plans");
        let plan = with_structs_as_json(plan)
            .expect("projects")
            .expect("has a struct");
        let batches = ctx
            .execute_logical_plan(plan)
            .await
            .expect("plans")
            .collect()
            .await
            .expect("runs");
        let batch = datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches)
            .expect("one batch");
        assert_eq!(batch.schema().field(1).name(), "w");
        assert_eq!(batch.schema().field(1).data_type(), &DataType::Utf8);
        let json = batch.column(1).as_string::<i32>();
        let providers = batch.column(0).as_string::<i32>();
        for row in 0..batch.num_rows() {
            match providers.value(row) {
                "RXH" => assert_eq!(json.value(row), r#"{"value":0.3,"lower":null}"#),
                _ => assert!(json.is_null(row)),
            }
        }
    }

    #[tokio::test]
    async fn plans_without_structs_are_left_alone() {
        let ctx = SessionContext::new();
        let plan = ctx
            .state()
            .create_logical_plan("SELECT 1 AS one")
            .await
            .expect("plans");
        assert!(with_structs_as_json(plan).expect("checks").is_none());
    }
}
