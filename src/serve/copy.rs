//! `COPY (SELECT ...) TO STDOUT` and `COPY table TO STDOUT`, in text, CSV and binary: psql's
//! `\copy` and the ADBC PostgreSQL driver (Python's `adbc-driver-postgresql`, R's
//! `adbcpostgresql`) read results this way. Rows stream from the plan as they are produced.
//! `COPY` to or from a file or program is refused: the server sends results only to its client.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Statement,
};
use datafusion_postgres::QueryHook;
use datafusion_postgres::arrow_pg::datatypes::arrow_schema_to_pg_fields;
use datafusion_postgres::arrow_pg::encoder::encode_value;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::api::portal::Format;
use datafusion_postgres::pgwire::api::results::{
    CopyCsvOptions, CopyEncoder, CopyResponse, CopyTextOptions, FieldInfo, Response,
};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::copy::CopyData;
use futures::{StreamExt, stream};

use super::errors::{not_allowed, sqlstate};
use super::respond::{api, no_rows_plan};

/// The format a `COPY ... TO STDOUT` asked for.
#[derive(Debug, Clone, PartialEq)]
enum CopyFormat {
    Text(CopyTextOptions),
    Csv {
        options: CopyCsvOptions,
        header: bool,
    },
    Binary,
}

impl CopyFormat {
    /// pgwire's code for the format: 1 binary, 0 text and CSV.
    fn code(&self) -> i8 {
        i8::from(matches!(self, Self::Binary))
    }

    fn encoder(&self, fields: Arc<Vec<FieldInfo>>) -> CopyEncoder {
        match self {
            Self::Text(options) => CopyEncoder::new_text(fields, options.clone()),
            Self::Csv { options, .. } => CopyEncoder::new_csv(fields, options.clone()),
            Self::Binary => CopyEncoder::new_binary(fields),
        }
    }
}

/// What a `COPY` statement asks: the query whose rows go to the client, and their format.
#[derive(Debug, Clone, PartialEq)]
struct CopyOut {
    query: String,
    format: CopyFormat,
}

fn unsupported(message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_owned(),
        sqlstate::FEATURE_NOT_SUPPORTED.to_owned(),
        message,
    )))
}

/// The `COPY ... TO STDOUT` that `statement` is; `None` if it is no `COPY`; an error for a `COPY`
/// that reads or writes anything but the connection, or takes options ebiq does not know.
fn copy_out(statement: &Statement) -> Option<PgWireResult<CopyOut>> {
    let Statement::Copy {
        source,
        to,
        target,
        options,
        legacy_options,
        ..
    } = statement
    else {
        return None;
    };
    if !to || *target != CopyTarget::Stdout {
        return Some(Err(not_allowed(format!(
            "COPY {} {target} is not allowed: ebiq serve is read-only and sends results only to \
             its client (use COPY ... TO STDOUT, or psql's \\copy)",
            if *to { "TO" } else { "FROM" }
        ))));
    }
    let query = match source {
        CopySource::Query(query) => query.to_string(),
        CopySource::Table {
            table_name,
            columns,
        } if columns.is_empty() => format!("SELECT * FROM {table_name}"),
        CopySource::Table {
            table_name,
            columns,
        } => {
            let names: Vec<String> = columns.iter().map(ToString::to_string).collect();
            format!("SELECT {} FROM {table_name}", names.join(", "))
        }
    };
    Some(copy_format(options, legacy_options).map(|format| CopyOut { query, format }))
}

/// The format of a `COPY` from its options, in PostgreSQL's syntax since 9.0 (`WITH (FORMAT csv,
/// HEADER)`) or before it (`CSV HEADER`, `BINARY`; psql's `\copy` writes this one).
fn copy_format(
    options: &[CopyOption],
    legacy_options: &[CopyLegacyOption],
) -> PgWireResult<CopyFormat> {
    let mut kind = "text".to_owned();
    let mut header = false;
    let mut delimiter = None;
    let mut null = None;
    let mut quote = None;
    let mut escape = None;
    for option in options {
        match option {
            CopyOption::Format(name) => kind = name.value.to_ascii_lowercase(),
            CopyOption::Header(on) => header = *on,
            CopyOption::Delimiter(c) => delimiter = Some(*c),
            CopyOption::Null(text) => null = Some(text.clone()),
            CopyOption::Quote(c) => quote = Some(*c),
            CopyOption::Escape(c) => escape = Some(*c),
            CopyOption::Encoding(name) if name.eq_ignore_ascii_case("utf8") => {}
            CopyOption::Encoding(name) if name.eq_ignore_ascii_case("utf-8") => {}
            other => return Err(unsupported(format!("COPY option {other} is not supported"))),
        }
    }
    for option in legacy_options {
        match option {
            CopyLegacyOption::Binary => kind = "binary".to_owned(),
            CopyLegacyOption::Delimiter(c) => delimiter = Some(*c),
            CopyLegacyOption::Null(text) => null = Some(text.clone()),
            CopyLegacyOption::Header => header = true,
            CopyLegacyOption::Csv(csv_options) => {
                kind = "csv".to_owned();
                for csv_option in csv_options {
                    match csv_option {
                        CopyLegacyCsvOption::Header => header = true,
                        CopyLegacyCsvOption::Quote(c) => quote = Some(*c),
                        CopyLegacyCsvOption::Escape(c) => escape = Some(*c),
                        other => {
                            return Err(unsupported(format!(
                                "COPY option {other} is not supported"
                            )));
                        }
                    }
                }
            }
            other => return Err(unsupported(format!("COPY option {other} is not supported"))),
        }
    }
    match kind.as_str() {
        "text" => {
            let mut text = CopyTextOptions::default();
            if let Some(c) = delimiter {
                text.delimiter = c.to_string().into();
            }
            if let Some(n) = null {
                text.null_string = n.into();
            }
            Ok(CopyFormat::Text(text))
        }
        "csv" => {
            let mut csv = CopyCsvOptions::default();
            if let Some(c) = delimiter {
                csv.delimiter = c.to_string().into();
            }
            if let Some(n) = null {
                csv.null_string = n.into();
            }
            if let Some(c) = quote {
                csv.quote = c.to_string().into();
                if escape.is_none() {
                    csv.escape = csv.quote.clone();
                }
            }
            if let Some(c) = escape {
                csv.escape = c.to_string().into();
            }
            Ok(CopyFormat::Csv {
                options: csv,
                header,
            })
        }
        "binary" => Ok(CopyFormat::Binary),
        other => Err(unsupported(format!(
            "COPY format {other} is not supported: use text, csv or binary"
        ))),
    }
}

/// The first bytes of a binary COPY: signature, flags, header extension length. pgwire writes
/// them before the first row; a result with no rows needs them too.
const BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Runs the copy's query and streams its rows to the client in the format asked for.
async fn run_copy(copy: CopyOut, ctx: &SessionContext) -> PgWireResult<Response> {
    let frame = ctx.sql(&copy.query).await.map_err(api)?;
    let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    let wire_format = match copy.format {
        CopyFormat::Binary => Format::UnifiedBinary,
        _ => Format::UnifiedText,
    };
    let fields = Arc::new(arrow_schema_to_pg_fields(&schema, &wire_format, None)?);
    let batches = frame.execute_stream().await.map_err(api)?;
    let columns = fields.len();
    let mut lead = Vec::new();
    if let CopyFormat::Csv {
        header: true,
        options,
    } = &copy.format
    {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let line = format!("{}\n", names.join(options.delimiter.as_str()));
        lead.push(Ok(CopyData::new(Bytes::from(line))));
    }
    let format = copy.format.clone();
    let mut encoder = format.encoder(fields.clone());
    let rows_sent = Arc::new(AtomicBool::new(false));
    let any_row = rows_sent.clone();
    let rows = batches.flat_map(move |batch| {
        let rows: Vec<PgWireResult<CopyData>> = match batch {
            Ok(batch) => encode_batch(&mut encoder, &batch, &fields),
            Err(error) => vec![Err(api(error))],
        };
        if !rows.is_empty() {
            any_row.store(true, Ordering::Relaxed);
        }
        stream::iter(rows)
    });
    // Polled only once every row has been sent.
    let empty_binary_header = stream::once(async move {
        (format == CopyFormat::Binary && !rows_sent.load(Ordering::Relaxed))
            .then(|| Ok(CopyData::new(Bytes::from_static(BINARY_HEADER))))
    })
    .filter_map(|header| async move { header });
    let data = stream::iter(lead).chain(rows).chain(empty_binary_header);
    Ok(Response::CopyOut(CopyResponse::new(
        copy.format.code(),
        columns,
        data,
    )))
}

/// The answer to `statement` if it is a `COPY`: its rows, or why it is refused.
async fn answer(statement: &Statement, ctx: &SessionContext) -> Option<PgWireResult<Response>> {
    Some(match copy_out(statement)? {
        Ok(copy) => run_copy(copy, ctx).await,
        Err(refused) => Err(refused),
    })
}

/// One `CopyData` message per row of `batch`.
fn encode_batch(
    encoder: &mut CopyEncoder,
    batch: &RecordBatch,
    fields: &[FieldInfo],
) -> Vec<PgWireResult<CopyData>> {
    let schema = batch.schema();
    (0..batch.num_rows())
        .map(|row| {
            for (index, field) in fields.iter().enumerate() {
                encode_value(
                    encoder,
                    batch.column(index),
                    row,
                    schema.field(index),
                    field,
                )?;
            }
            Ok(encoder.take_copy())
        })
        .collect()
}

/// Answers `COPY` statements.
#[derive(Debug)]
pub(super) struct CopyHook;

#[async_trait]
impl QueryHook for CopyHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        answer(statement, session_context).await
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _session_context: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        // A COPY describes as returning no rows (its data goes in the COPY sub-protocol); libpq's
        // PQexecParams, which the ADBC driver uses, sends it this way.
        Some(copy_out(statement)?.and_then(|_| no_rows_plan()))
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _logical_plan: &LogicalPlan,
        _params: &ParamValues,
        session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        answer(statement, session_context).await
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    fn parse(sql: &str) -> Statement {
        let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).expect("parses");
        statements.remove(0)
    }

    fn copy_of(sql: &str) -> PgWireResult<CopyOut> {
        copy_out(&parse(sql)).expect("a COPY")
    }

    fn code(error: PgWireError) -> String {
        match error {
            PgWireError::UserError(info) => info.code,
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn each_way_of_asking_for_a_format_is_understood() {
        let text = copy_of("COPY (SELECT 1) TO STDOUT").expect("text");
        assert_eq!(text.format, CopyFormat::Text(CopyTextOptions::default()));
        assert_eq!(text.query, "SELECT 1");

        let binary = copy_of("COPY (SELECT 1 AS a) TO STDOUT (FORMAT binary)").expect("binary");
        assert_eq!(binary.format, CopyFormat::Binary);
        assert_eq!(
            copy_of("COPY opa TO STDOUT BINARY").expect("legacy").format,
            CopyFormat::Binary
        );

        // psql's \copy (SELECT ...) TO 'f.csv' CSV HEADER sends this.
        let csv = copy_of("COPY ( SELECT 1 ) TO STDOUT CSV HEADER").expect("legacy csv");
        assert!(matches!(csv.format, CopyFormat::Csv { header: true, .. }));
        let csv =
            copy_of("COPY opa (der_provider_code) TO STDOUT WITH (FORMAT csv, DELIMITER ';')")
                .expect("csv");
        assert_eq!(csv.query, "SELECT der_provider_code FROM opa");
        let CopyFormat::Csv { options, header } = csv.format else {
            panic!("csv expected")
        };
        assert!(!header);
        assert_eq!(options.delimiter.as_str(), ";");
    }

    #[test]
    fn files_programs_and_copy_from_are_refused() {
        for sql in [
            "COPY opa TO '/tmp/opa.csv'",
            "COPY opa TO PROGRAM 'cat'",
            "COPY opa FROM STDIN",
            "COPY opa FROM '/etc/passwd'",
        ] {
            let error = copy_of(sql).expect_err(sql);
            assert_eq!(code(error), sqlstate::INSUFFICIENT_PRIVILEGE, "{sql}");
        }
        let error = copy_of("COPY opa TO STDOUT (FORMAT parquet)").expect_err("unknown format");
        assert_eq!(code(error), sqlstate::FEATURE_NOT_SUPPORTED);
        assert!(copy_out(&parse("SELECT 1")).is_none());
    }
}
