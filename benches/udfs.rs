//! The rule functions on one million realistic outpatient rows (from the generator's population),
//! called through `invoke_with_args` as DataFusion calls them. Throughput is bytes of
//! `Der_Procedure_All` text per second.
//!
//! `cargo bench --bench udfs`

// criterion_group! defines an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::{Arc, LazyLock};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Int32Array, StringViewArray};
use datafusion::arrow::compute::kernels::boolean::{and_kleene, or_kleene};
use datafusion::arrow::datatypes::Field;
use datafusion::common::ScalarValue;
use datafusion::common::config::ConfigOptions;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl};
use ebiq::generate::{ListStyle, Population, Record};
use ebiq_udfs::{EbiqOptions, RuleFunction, TsqlLike, builtin_rules, rule_functions};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const ROWS: usize = 1_000_000;

/// One session's options, shared by every call as DataFusion shares them.
static CONFIG: LazyLock<Arc<ConfigOptions>> = LazyLock::new(|| {
    let mut config = ConfigOptions::new();
    config.extensions.insert(EbiqOptions::default());
    Arc::new(config)
});

/// DataFusion's default batch size.
const BATCH: usize = 8192;

struct Columns {
    procedures: ArrayRef,
    age_at_start: ArrayRef,
    age_at_activity: ArrayRef,
    diagnoses: ArrayRef,
    admin_category: ArrayRef,
    procedure_bytes: u64,
}

fn columns() -> Columns {
    let population = Population::default();
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let mut record = Record::default();
    let (mut procedures, mut diagnoses, mut admin) = (Vec::new(), Vec::new(), Vec::new());
    let (mut age_at_start, mut age_at_activity) = (Vec::new(), Vec::new());
    for _ in 0..ROWS {
        population.sample(&mut rng, ListStyle::Comma, &mut record);
        procedures.push(record.procedures.clone());
        diagnoses.push(record.diagnoses.clone());
        admin.push(record.admin_category);
        age_at_start.push(record.age_at_start);
        age_at_activity.push(record.age_at_activity);
    }
    let procedure_bytes = procedures.iter().flatten().map(|p| p.len() as u64).sum();
    Columns {
        procedures: Arc::new(StringViewArray::from_iter(procedures)),
        age_at_start: Arc::new(Int32Array::from(age_at_start)),
        age_at_activity: Arc::new(Int32Array::from(age_at_activity)),
        diagnoses: Arc::new(StringViewArray::from_iter(diagnoses)),
        admin_category: Arc::new(StringViewArray::from_iter(admin)),
        procedure_bytes,
    }
}

fn invoke(function: &dyn ScalarUDFImpl, args: &[ColumnarValue]) -> ArrayRef {
    let rows = args
        .iter()
        .find_map(|arg| match arg {
            ColumnarValue::Array(array) => Some(array.len()),
            ColumnarValue::Scalar(_) => None,
        })
        .unwrap_or(ROWS);
    let types: Vec<_> = args.iter().map(ColumnarValue::data_type).collect();
    let return_type = function.return_type(&types).expect("a return type");
    let arg_fields = types
        .iter()
        .map(|t| Arc::new(Field::new("a", t.clone(), true)))
        .collect();
    function
        .invoke_with_args(ScalarFunctionArgs {
            args: args.to_vec(),
            arg_fields,
            number_rows: rows,
            return_field: Arc::new(Field::new("out", return_type, true)),
            config_options: Arc::clone(&CONFIG),
        })
        .expect("the function runs")
        .into_array(rows)
        .expect("an array")
}

fn rule_function(name: &str) -> RuleFunction {
    let rule = builtin_rules()
        .expect("the built-in rules load")
        .into_iter()
        .next()
        .expect("one more line or item");
    rule_functions(rule)
        .into_iter()
        .find(|f| f.name() == name)
        .expect("the item is present")
}

/// The code script's procedure clause as five separate `tsql_like` calls joined by Kleene AND/OR.
fn separate_calls(like: &TsqlLike, procedures: &ColumnarValue) -> BooleanArray {
    let call = |pattern: &str| {
        let pattern = ColumnarValue::Scalar(ScalarValue::Utf8(Some(pattern.to_owned())));
        let result = invoke(like, &[procedures.clone(), pattern]);
        result
            .as_any()
            .downcast_ref::<BooleanArray>()
            .expect("the expected array type")
            .clone()
    };
    let spine = call("%U05[45]%");
    let imaging =
        or_kleene(&call("%U13[2356]%"), &call("%U21[1267]%")).expect("same-length arrays");
    let site = or_kleene(&call("%Z665%"), &call("%O162%")).expect("same-length arrays");
    or_kleene(
        &spine,
        &and_kleene(&imaging, &site).expect("same-length arrays"),
    )
    .expect("same-length arrays")
}

fn benches(c: &mut Criterion) {
    let data = columns();
    let procedures = ColumnarValue::Array(Arc::clone(&data.procedures));
    let like = TsqlLike::new();
    let fused = rule_function("ebi_lower_back_imaging_included_by_der_procedure_all");
    let rule = rule_function("ebi_lower_back_imaging");

    let fused_answer = invoke(&fused, std::slice::from_ref(&procedures));
    let separate_answer = separate_calls(&like, &procedures);
    assert_eq!(
        fused_answer.as_ref(),
        &separate_answer as &dyn Array,
        "fused and separate disagree"
    );

    let mut group = c.benchmark_group("der_procedure_all");
    group.throughput(Throughput::Bytes(data.procedure_bytes));
    group.sample_size(20);
    let pattern = ColumnarValue::Scalar(ScalarValue::Utf8(Some("%U05[45]%".into())));
    group.bench_function("tsql_like %U05[45]%", |b| {
        b.iter(|| black_box(invoke(&like, &[procedures.clone(), pattern.clone()])))
    });
    group.bench_function("fused procedure clause (5 patterns)", |b| {
        b.iter(|| black_box(invoke(&fused, std::slice::from_ref(&procedures))))
    });
    group.bench_function("separate tsql_like calls (5 patterns)", |b| {
        b.iter(|| black_box(separate_calls(&like, &procedures)))
    });
    let all = [
        procedures.clone(),
        ColumnarValue::Array(Arc::clone(&data.age_at_start)),
        ColumnarValue::Array(Arc::clone(&data.age_at_activity)),
        ColumnarValue::Array(Arc::clone(&data.diagnoses)),
        ColumnarValue::Array(Arc::clone(&data.admin_category)),
    ];
    group.bench_function("ebi_lower_back_imaging (whole rule)", |b| {
        b.iter(|| black_box(invoke(&rule, &all)))
    });

    // As DataFusion calls a function: once per batch of `BATCH` rows, each batch's arrays a few
    // hundred kilobytes, where a 1M-row array's views alone are 16 MB.
    let batches: Vec<Vec<ColumnarValue>> = (0..ROWS)
        .step_by(BATCH)
        .map(|start| {
            let rows = BATCH.min(ROWS - start);
            all.iter()
                .map(|column| match column {
                    ColumnarValue::Array(array) => ColumnarValue::Array(array.slice(start, rows)),
                    scalar => scalar.clone(),
                })
                .collect()
        })
        .collect();
    group.bench_function(
        "fused procedure clause (5 patterns), 8192-row batches",
        |b| {
            b.iter(|| {
                for batch in &batches {
                    black_box(invoke(&fused, &batch[..1]));
                }
            })
        },
    );
    group.bench_function(
        "ebi_lower_back_imaging (whole rule), 8192-row batches",
        |b| {
            b.iter(|| {
                for batch in &batches {
                    black_box(invoke(&rule, batch));
                }
            })
        },
    );
    group.finish();
}

criterion_group!(udfs, benches);
criterion_main!(udfs);
