//! The main report end to end over the checked-in sample: planning, the Parquet scan of
//! `data-samples/`, the rule functions and the aggregation, as `ebiq report` runs it (the session
//! and tables are set up once, outside the timing).
//!
//! `cargo bench --bench report`

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ebiq::report::{Parameters, load_queries, run_query};
use ebiq::session::{Dataset, SessionSettings, new_session, register_dataset};

const SAMPLE_ROWS: u64 = 60_000;

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let project = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ctx = new_session(&SessionSettings::default()).unwrap();
    runtime.block_on(async {
        let data = project.join("data-samples");
        let dataset = Dataset::locate(&ctx, data.to_str().unwrap()).await.unwrap();
        register_dataset(&ctx, &dataset).await.unwrap();
    });
    let queries = load_queries(&project.join("queries")).unwrap();
    let main = queries
        .iter()
        .find(|q| q.name == "01_flagged_by_provider_month")
        .unwrap();
    let parameters = Parameters::new(None, None);

    let mut group = c.benchmark_group("report over data-samples");
    group.throughput(Throughput::Elements(SAMPLE_ROWS));
    group.bench_function("01_flagged_by_provider_month", |b| {
        b.iter(|| {
            let (_, batches) = runtime
                .block_on(run_query(&ctx, main, &parameters))
                .unwrap();
            black_box(batches)
        })
    });
    group.finish();
}

criterion_group!(report, benches);
criterion_main!(report);
