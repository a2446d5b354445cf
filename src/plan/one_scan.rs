//! Several queries' reads of one table from a single scan of it.
//!
//! Each query's [stems](super::stems) over the table (the parts that read it and nothing else)
//! run together before the queries do: one scan reads the columns any of them needs, each batch
//! goes to every stem ([`FanOut`]), and each stem's result is set aside in Arrow IPC files in a
//! temporary folder, as a shared CTE's is ([`super::shared_ctes`]). Each query then reads its
//! stems' results in their place. A stem that cannot be set aside (past the size limit, or
//! failing) is left in its query, which reads the table itself, as without this.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, TableReference};
use datafusion::datasource::provider_as_source;
use datafusion::execution::SessionState;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_plan::ExecutionPlan;
use tempfile::TempDir;

use super::cores::{read_through, share_cores};
use super::count_groups::counting_groups;
use super::fan_out::FanOut;
use super::hoist::{Hoisted, find_calls, hoist_calls};
use super::keep_rows::without_filter_copies;
use super::kept_once::keep_rows_once;
use super::scanned::files_scanned;
use super::shared_ctes::{Rewrite, SET_ASIDE_LIMIT, files_read_outside, read_back, write_results};
use super::stems::{is_scan_of, scan_conditions, without_conditions};

/// The table a scan is shared for: the SUS outpatient activity every report query reads.
pub(crate) const OPA: &str = "opa";

/// The stems' results, kept until the queries have read them.
#[derive(Debug, Default)]
pub(crate) struct OneScan {
    folder: Option<TempDir>,
    /// Each stem set aside, and the plan that reads its result in its place.
    pub(crate) replacements: Vec<(LogicalPlan, LogicalPlan)>,
    /// The rows of each stem's result, as `replacements`.
    rows: Vec<usize>,
    /// The files the scan read; `None` when its plan does not say.
    files_read: Option<BTreeSet<String>>,
}

impl OneScan {
    /// Whether every one of `stems` was set aside, so that a query made of them can read the
    /// results alone.
    pub(crate) fn serves(&self, stems: &[LogicalPlan]) -> bool {
        stems
            .iter()
            .all(|stem| self.replacements.iter().any(|(done, _)| done == stem))
    }

    /// The rows of each of `stems`' results, with the stem's name: a CTE's name (or a subquery's
    /// alias), else `whole`.
    pub(crate) fn results_of(&self, stems: &[LogicalPlan], whole: &str) -> Vec<(String, usize)> {
        let mut results = Vec::new();
        for stem in stems {
            let Some(found) = self.replacements.iter().position(|(done, _)| done == stem) else {
                continue;
            };
            // `FROM flagged AS f` is an alias over the CTE's own.
            let mut name = None;
            let mut node = stem;
            while let LogicalPlan::SubqueryAlias(alias) = node {
                name = Some(alias.alias.to_string());
                node = &alias.input;
            }
            let name = name.unwrap_or_else(|| whole.to_owned());
            results.push((name, self.rows[found]));
        }
        results
    }

    /// The files a query that read the stems' results read: `by_query`, the files its own plan
    /// scanned, less the results, with the files the scan read.
    pub(crate) fn files_read_with(
        &self,
        by_query: Option<BTreeSet<String>>,
    ) -> Option<BTreeSet<String>> {
        files_read_outside(self.folder.as_ref(), by_query, self.files_read.clone())
    }
}

/// Runs `stems` (each over a scan of `table`) from one scan of it, which also reads the columns
/// `read_also` names and goes through `rewrite` before it runs, and sets aside their results.
pub(crate) async fn run_in_one_scan(
    state: &SessionState,
    table: &str,
    stems: &[LogicalPlan],
    read_also: &[&str],
    rewrite: &mut Rewrite<'_>,
) -> Result<OneScan> {
    let Some(scan) = stems.iter().find_map(|stem| scan_in(stem, table)) else {
        return Ok(OneScan::default());
    };
    let scan_name = scan_name(&scan, table);
    let schema = Arc::clone(scan.schema().inner());
    let shared = shared_conditions(stems, table);
    // The scan keeps only the rows that meet the shared conditions, so the stems need not test
    // them again (for 20M rows and eight stems that is 320M string comparisons of the month).
    let fed_stems = stems
        .iter()
        .map(|stem| without_conditions(stem, table, &shared))
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    let mut hoisted = Hoisted::default();
    for stem in &fed_stems {
        find_calls(stem, table, &scan_name, &mut hoisted)?;
    }
    let fan_out = FanOut::new(hoisted.widen(&schema));
    let fanned =
        LogicalPlanBuilder::scan(scan_name.clone(), provider_as_source(fan_out.table()), None)?
            .build()?;
    // The stems run side by side and share the cores: a stem given more partitions than its share
    // passes every batch through a round-robin repartition, which gathers (and copies) what it
    // passes into batches of its own, for cores the other stems keep busy.
    let share = (state.config().target_partitions() / stems.len()).max(1);
    // A copy of the state, not a new one built from it: a new one registers a fresh default
    // catalog in the catalog list both share, and the session's tables would be gone.
    let mut stem_state = state.clone();
    stem_state
        .config_mut()
        .options_mut()
        .execution
        .target_partitions = share;
    let mut fed_plans = Vec::new();
    for (index, stem) in stems.iter().enumerate() {
        // A stem whose columns share a name cannot be written to one file; a stem that does not
        // plan here fails as its query's own error later.
        if has_repeated_names(stem) {
            continue;
        }
        if let Ok(plan) = hoist_calls(&fed_stems[index], table, &scan_name, &fanned, &hoisted) {
            fed_plans.push((index, plan));
        }
    }
    let (alone, cores) = share_cores(&fed_plans);
    let mut planned = Vec::new();
    for (index, plan) in &fed_plans {
        if !alone.contains(index) {
            continue;
        }
        if let Ok(physical) = stem_state.create_physical_plan(plan).await {
            let physical = counting_groups(physical)?;
            let schema = stems[*index].schema().inner().clone();
            planned.push((Runs::Stem(*index), physical, schema));
        }
    }
    for (core, shared_core) in cores.into_iter().enumerate() {
        let Ok(plan) = shared_core.plan() else {
            continue;
        };
        if has_repeated_names(&plan) {
            continue;
        }
        if let Ok(physical) = stem_state.create_physical_plan(&plan).await {
            let physical = counting_groups(physical)?;
            let schema = plan.schema().inner().clone();
            planned.push((Runs::Core(core, shared_core.members), physical, schema));
        }
    }
    if planned.is_empty() {
        return Ok(OneScan::default());
    }
    keep_rows_once(
        planned
            .iter_mut()
            .map(|(_, physical, _)| physical)
            .collect(),
        &fan_out,
    )?;
    let also: Vec<usize> = read_also
        .iter()
        .filter_map(|name| schema.index_of(name).ok())
        .collect();
    fan_out.read_also(&also);
    let feed = rewrite(one_scan_plan(state, &scan, &scan_name, &fan_out, &hoisted, shared).await?)?;
    let files_read = files_scanned(&feed);
    let folder = tempfile::Builder::new()
        .prefix("ebiq-scan-")
        .tempdir_in(std::env::temp_dir())
        .context("cannot make a temporary folder for the results of the shared scan")?;
    let writers = planned.into_iter().map(|(runs, physical, schema)| {
        let into = folder.path().join(runs.folder_name());
        async move {
            let written =
                write_results(state, physical, Arc::clone(&schema), &into, SET_ASIDE_LIMIT).await;
            (runs, into, schema, written)
        }
    });
    let (fed, written) = futures::join!(
        fan_out.feed(feed, state.task_ctx()),
        futures::future::join_all(writers)
    );
    if fed.is_err() {
        // Each query then reads the table itself, and meets the error as its own.
        return Ok(OneScan::default());
    }
    let mut replacements = Vec::new();
    let mut rows = Vec::new();
    for (runs, into, schema, written) in written {
        let Ok(Some(written)) = written else { continue };
        match runs {
            Runs::Stem(index) => {
                let stem = &stems[index];
                replacements.push((stem.clone(), reader(stem, index, &into)?));
                rows.push(written);
            }
            Runs::Core(core, members) => {
                let name = format!("ebiq_core_{core}");
                let result =
                    LogicalPlanBuilder::scan(name.as_str(), read_back(&into, &schema)?, None)?
                        .build()?;
                for index in members {
                    let stem = &stems[index];
                    let read = read_through(stem, result.clone(), &name)?;
                    replacements.push((stem.clone(), read));
                    rows.push(written);
                }
            }
        }
    }
    Ok(OneScan {
        folder: Some(folder),
        replacements,
        rows,
        files_read,
    })
}

/// What one plan fed by the scan computes: a stem's result, or a core that several stems share
/// ([`share_cores`]), with their indexes.
enum Runs {
    Stem(usize),
    Core(usize, Vec<usize>),
}

impl Runs {
    /// The folder, in the scan's temporary folder, of its result.
    fn folder_name(&self) -> String {
        match self {
            Self::Stem(index) => format!("stem_{index}"),
            Self::Core(core, _) => format!("core_{core}"),
        }
    }
}

/// The read of `table` in `stem` ([`is_scan_of`]).
fn scan_in(stem: &LogicalPlan, table: &str) -> Option<LogicalPlan> {
    let mut found = None;
    let _ = stem.apply(|node| {
        if is_scan_of(node, table) {
            found = Some(node.clone());
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// The name the columns of `scan` (a read of `table`) are qualified by.
fn scan_name(scan: &LogicalPlan, table: &str) -> TableReference {
    match scan {
        LogicalPlan::TableScan(scan) => scan.table_name.clone(),
        LogicalPlan::SubqueryAlias(alias) => alias.alias.clone(),
        _ => TableReference::bare(table),
    }
}

/// The conditions all `stems`' filters over their scan of `table` share.
fn shared_conditions(stems: &[LogicalPlan], table: &str) -> Vec<Expr> {
    let Some((first, rest)) = stems.split_first() else {
        return Vec::new();
    };
    let mut shared = scan_conditions(first, table);
    for stem in rest {
        let conditions = scan_conditions(stem, table);
        shared.retain(|condition| conditions.contains(condition));
    }
    shared
}

/// The physical plan of the one scan: the columns `fan_out`'s consumers read (the table's, then
/// the `hoisted` calls'), in its order, of the rows that meet the `shared` conditions (so that
/// the files and row groups no stem needs are skipped; a call in them is made again for the
/// rows they keep, if a stem reads it elsewhere).
async fn one_scan_plan(
    state: &SessionState,
    scan: &LogicalPlan,
    scan_name: &TableReference,
    fan_out: &FanOut,
    hoisted: &Hoisted,
    shared: Vec<Expr>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let schema = scan.schema();
    let own = schema.fields().len();
    let columns = fan_out.columns_read().into_iter().map(|index| {
        if index < own {
            Expr::Column(Column::new(
                Some(scan_name.clone()),
                schema.field(index).name(),
            ))
        } else {
            let call = index - own;
            hoisted.computed(call).alias(Hoisted::column_name(call))
        }
    });
    let mut builder = LogicalPlanBuilder::from(scan.clone());
    if let Some(condition) = conjunction(shared) {
        builder = builder.filter(condition)?;
    }
    let plan = builder.project(columns)?.build()?;
    Ok(without_filter_copies(
        state.create_physical_plan(&plan).await?,
    )?)
}

fn has_repeated_names(stem: &LogicalPlan) -> bool {
    let names: BTreeSet<&String> = stem.schema().fields().iter().map(|f| f.name()).collect();
    names.len() != stem.schema().fields().len()
}

/// A plan reading the result of stem `index`, set aside in `folder`, with the stem's columns as
/// the stem named them (qualifiers included), so that the query reads it in the stem's place.
fn reader(stem: &LogicalPlan, index: usize, folder: &Path) -> Result<LogicalPlan> {
    let name = format!("ebiq_stem_{index}");
    let source = read_back(folder, stem.schema().inner())?;
    let result = LogicalPlanBuilder::scan(name.as_str(), source, None)?.build()?;
    Ok(with_columns_of(stem, result, &name)?)
}

/// `result` (a read named `result_name` of a result with `node`'s column names) projected to
/// `node`'s columns with their names and qualifiers, so that the nodes over `node` read it in
/// its place.
pub(super) fn with_columns_of(
    node: &LogicalPlan,
    result: LogicalPlan,
    result_name: &str,
) -> datafusion::error::Result<LogicalPlan> {
    let columns = node.schema().iter().map(|(qualifier, field)| {
        Expr::Column(Column::new(Some(result_name), field.name()))
            .alias_qualified(qualifier.cloned(), field.name())
    });
    LogicalPlanBuilder::from(result).project(columns)?.build()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use datafusion::arrow::array::{ArrayRef, Int32Array};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::{DataFrame, SessionContext};

    use super::*;
    use crate::plan::counting::counting_function;
    use crate::plan::stems::{replace_stems, stems_of};

    /// A session with `t(a)` holding 1 to 100 in four batches, and `ebi_counted(a)`, a rule-like
    /// function that returns `a` and counts the rows it is called on.
    fn counting_session() -> (SessionContext, Arc<AtomicUsize>) {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int32, false)]));
        let batches = (0..4)
            .map(|quarter| {
                let values = (quarter * 25 + 1)..=(quarter * 25 + 25);
                let column: ArrayRef = Arc::new(Int32Array::from_iter_values(values));
                RecordBatch::try_new(Arc::clone(&schema), vec![column]).expect("a batch")
            })
            .collect();
        let ctx = SessionContext::new();
        let table = MemTable::try_new(schema, vec![batches]).expect("a table");
        ctx.register_table("t", Arc::new(table))
            .expect("registered");
        let (function, calls) = counting_function("ebi_counted");
        ctx.register_udf(function);
        (ctx, calls)
    }

    const QUERIES: [&str; 4] = [
        "SELECT a % 3 AS k, count(*) AS n FROM t WHERE ebi_counted(a) > 30 GROUP BY 1 ORDER BY 1",
        "SELECT max(a) AS top, count(*) FILTER (WHERE ebi_counted(a) % 2 = 0) AS even FROM t",
        "WITH f AS (SELECT a FROM t WHERE ebi_counted(a) % 7 = 0) \
         SELECT count(*) AS pairs FROM f AS x JOIN f AS y ON x.a = y.a",
        "SELECT count(*) AS small FROM t WHERE a < 10",
    ];

    async fn text(state: &SessionState, plan: LogicalPlan) -> String {
        let batches = DataFrame::new(state.clone(), plan)
            .collect()
            .await
            .expect("ran");
        pretty_format_batches(&batches)
            .expect("printed")
            .to_string()
    }

    #[tokio::test]
    async fn several_queries_read_the_table_once_and_call_the_rule_once_per_row() {
        let (ctx, calls) = counting_session();
        let state = ctx.state();
        let mut plans = Vec::new();
        let mut inline = Vec::new();
        for sql in QUERIES {
            let plan = state.create_logical_plan(sql).await.expect("planned");
            inline.push(text(&state, plan.clone()).await);
            plans.push(plan);
        }
        assert!(
            calls.swap(0, Ordering::Relaxed) > 100,
            "each query calls it"
        );
        let mut stems = Vec::new();
        for plan in &plans {
            for stem in stems_of(plan, "t").expect("walked").expect("served") {
                if !stems.contains(&stem) {
                    stems.push(stem);
                }
            }
        }
        assert_eq!(stems.len(), 4);
        let one = run_in_one_scan(&state, "t", &stems, &[], &mut Ok)
            .await
            .expect("ran");
        assert_eq!(calls.load(Ordering::Relaxed), 100, "once per row");
        assert_eq!(one.replacements.len(), 4);
        for (plan, inline) in plans.into_iter().zip(inline) {
            let served = replace_stems(plan, &one.replacements).expect("replaced");
            let mut scans_t = 0;
            served
                .apply_with_subqueries(|node| {
                    if let LogicalPlan::TableScan(scan) = node {
                        scans_t += usize::from(scan.table_name.table() == "t");
                    }
                    Ok(TreeNodeRecursion::Continue)
                })
                .expect("walked");
            assert_eq!(scans_t, 0, "{served}");
            assert_eq!(text(&state, served).await, inline);
        }
        assert_eq!(
            calls.load(Ordering::Relaxed),
            100,
            "the queries read the results"
        );
    }

    #[tokio::test]
    async fn a_stem_that_fails_is_left_to_its_query() {
        let (ctx, _) = counting_session();
        let state = ctx.state();
        let plan = state
            .create_logical_plan("SELECT count(*) AS n FROM t WHERE 1 / (a - a) > 0")
            .await
            .expect("planned");
        let stems = stems_of(&plan, "t").expect("walked").expect("served");
        let one = run_in_one_scan(&state, "t", &stems, &[], &mut Ok)
            .await
            .expect("no error of its own");
        assert!(!one.serves(&stems));
        assert!(one.replacements.is_empty());
    }

    #[tokio::test]
    async fn a_condition_every_stem_shares_is_tested_once_per_row_by_the_scan_alone() {
        let (ctx, calls) = counting_session();
        let state = ctx.state();
        let mut plans = Vec::new();
        let mut inline = Vec::new();
        for sql in [
            "SELECT count(*) AS even FROM t WHERE ebi_counted(a) <= 90 AND a % 2 = 0",
            "SELECT a % 3 AS k, count(*) AS n FROM t WHERE ebi_counted(a) <= 90 GROUP BY 1 ORDER BY 1",
        ] {
            let plan = state.create_logical_plan(sql).await.expect("planned");
            inline.push(text(&state, plan.clone()).await);
            plans.push(plan);
        }
        let mut stems = Vec::new();
        for plan in &plans {
            stems.extend(stems_of(plan, "t").expect("walked").expect("served"));
        }
        calls.store(0, Ordering::Relaxed);
        let one = run_in_one_scan(&state, "t", &stems, &[], &mut Ok)
            .await
            .expect("ran");
        // Not again for the 90 rows it keeps, as a column or in each stem's filter.
        assert_eq!(calls.load(Ordering::Relaxed), 100);
        for (plan, inline) in plans.into_iter().zip(inline) {
            let served = replace_stems(plan, &one.replacements).expect("replaced");
            assert_eq!(text(&state, served).await, inline);
        }
    }

    #[tokio::test]
    async fn stems_that_group_the_same_rows_the_same_way_share_one_aggregation() {
        let (ctx, _) = counting_session();
        // Not an `ebi_` function, so each aggregation that groups by it calls it on every row.
        let (key, keyed) = counting_function("counted_key");
        ctx.register_udf(key);
        let state = ctx.state();
        let mut plans = Vec::new();
        let mut inline = Vec::new();
        for sql in [
            "SELECT counted_key(a) % 3 AS k, count(*) AS n FROM t GROUP BY 1 ORDER BY 1",
            "SELECT counted_key(a) % 3 AS k, sum(a) AS s, count(*) AS n FROM t \
             GROUP BY counted_key(a) % 3 ORDER BY s",
            // An aggregation over the same grouping: what it does over it runs in its query.
            "WITH g AS (SELECT counted_key(a) % 3 AS k, max(a) AS top FROM t GROUP BY 1) \
             SELECT min(top) AS low, (SELECT count(*) FROM g) AS keys FROM g",
            // A different grouping has an aggregation of its own.
            "SELECT counted_key(a) % 4 AS k, count(*) AS n FROM t GROUP BY 1 ORDER BY 1",
        ] {
            let plan = state.create_logical_plan(sql).await.expect("planned");
            inline.push(text(&state, plan.clone()).await);
            plans.push(plan);
        }
        let mut stems = Vec::new();
        for plan in &plans {
            for stem in stems_of(plan, "t").expect("walked").expect("served") {
                if !stems.contains(&stem) {
                    stems.push(stem);
                }
            }
        }
        keyed.store(0, Ordering::Relaxed);
        let one = run_in_one_scan(&state, "t", &stems, &[], &mut Ok)
            .await
            .expect("ran");
        assert!(one.serves(&stems));
        assert_eq!(
            keyed.load(Ordering::Relaxed),
            200,
            "one aggregation by `% 3` and one by `% 4`, each over the 100 rows"
        );
        for (plan, inline) in plans.into_iter().zip(inline) {
            let served = replace_stems(plan, &one.replacements).expect("replaced");
            assert_eq!(text(&state, served).await, inline);
        }
        assert_eq!(
            keyed.load(Ordering::Relaxed),
            200,
            "the queries read results"
        );
    }
}
