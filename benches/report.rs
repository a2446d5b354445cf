//! The main report end to end over the checked-in sample: planning, the Parquet scan of
//! `data-samples/`, the rule functions and the aggregation, as `ebiq report` runs it (the session
//! and tables are set up once, outside the timing).
//!
//! `cargo bench --bench report`

// criterion_group! defines an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ebiq::report::{Parameters, load_queries, run_query};
use ebiq::session::{SessionSettings, open};

const SAMPLE_ROWS: u64 = 60_000;

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("a valid value");
    let project = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = project.join("data-samples");
    let settings = SessionSettings::over(data.to_str().expect("a UTF-8 path"));
    let ctx = runtime
        .block_on(open(&settings))
        .expect("the report runs")
        .ctx;
    let queries = load_queries(&project.join("queries")).expect("queries/ loads");
    let main = queries
        .iter()
        .find(|q| q.name == "01_flagged_by_provider_month")
        .expect("the item is present");
    let parameters = Parameters::new(None, None);

    let mut group = c.benchmark_group("report over data-samples");
    group.throughput(Throughput::Elements(SAMPLE_ROWS));
    group.bench_function("01_flagged_by_provider_month", |b| {
        b.iter(|| {
            let result = runtime
                .block_on(run_query(&ctx, main, &parameters))
                .expect("the report runs");
            black_box(result.batches)
        })
    });
    group.finish();
}

criterion_group!(report, benches);
criterion_main!(report);
