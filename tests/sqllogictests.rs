//! Runs every `tests/slt/*.slt` file against an ebiq session over `data-samples/`: the SQL an
//! analyst writes, with the rule functions and the SUS tables as `report` registers them.

use std::path::Path;

use async_trait::async_trait;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;
use ebiq::session::{SessionSettings, open};
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType, Runner};

struct Ebiq {
    ctx: SessionContext,
}

fn column_type(data_type: &DataType) -> DefaultColumnType {
    if data_type.is_integer() {
        DefaultColumnType::Integer
    } else if data_type.is_floating() || matches!(data_type, DataType::Decimal128(..)) {
        DefaultColumnType::FloatingPoint
    } else {
        DefaultColumnType::Text
    }
}

#[async_trait]
impl AsyncDB for Ebiq {
    type Error = DataFusionError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<Self::ColumnType>, Self::Error> {
        let frame = self.ctx.sql(sql).await?;
        let types: Vec<_> = frame
            .schema()
            .fields()
            .iter()
            .map(|f| column_type(f.data_type()))
            .collect();
        let batches = frame.collect().await?;
        if types.is_empty() {
            return Ok(DBOutput::StatementComplete(0));
        }
        let mut rows = Vec::new();
        for batch in &batches {
            for row in 0..batch.num_rows() {
                let cells = batch
                    .columns()
                    .iter()
                    .map(|column| {
                        if column.is_null(row) {
                            return Ok("NULL".to_owned());
                        }
                        let text = array_value_to_string(column, row)?;
                        Ok(if text.is_empty() {
                            "(empty)".to_owned()
                        } else {
                            text
                        })
                    })
                    .collect::<Result<Vec<_>, DataFusionError>>()?;
                rows.push(cells);
            }
        }
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "ebiq"
    }
}

async fn connect() -> Result<Ebiq, DataFusionError> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data-samples");
    let session = open(&SessionSettings::over(data.to_str().expect("a UTF-8 path")))
        .await
        .map_err(|e| DataFusionError::External(e.into()))?;
    Ok(Ebiq { ctx: session.ctx })
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_logic_tests() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("a listable folder")
        .map(|e| e.expect("a folder entry").path())
        .collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "slt"));
    files.sort();
    assert!(!files.is_empty());
    for file in files {
        let mut runner = Runner::new(connect);
        if let Err(error) = runner.run_file_async(&file).await {
            panic!("{}: {}", file.display(), error.display(false));
        }
    }
}
