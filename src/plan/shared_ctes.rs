//! A common table expression that reads tables and is referenced more than once runs once.
//!
//! DataFusion plans each reference to a CTE as a copy of its body, so a query that uses the
//! flagged appointments three ways, one of them through a CTE itself used twice
//! (`queries/07_headline.sql`), scanned `opa` and ran the rule four times. Before planning, each such CTE (the innermost first) runs once into Arrow IPC
//! files in a temporary folder, and every reference reads those instead: what the CTE returns
//! (a few percent of `opa`, for the report's queries) is set aside on disk rather than in memory,
//! so peak memory stays that of a scan, and the folder goes when the query ends.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::writer::{FileWriter, IpcWriteOptions};
use datafusion::arrow::ipc::{CompressionType, MetadataVersion};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNodeRecursion};
use datafusion::datasource::file_format::arrow::ArrowFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::provider_as_source;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder, SubqueryAlias};
use datafusion::physical_plan::{ExecutionPlan, execute_stream_partitioned};
use datafusion::sql::parser::Statement as DFStatement;
use futures::StreamExt;
use sqlparser::ast::{Query, Visit, Visitor};
use tempfile::TempDir;
use tokio::task::JoinSet;

use super::scanned::files_scanned;

/// The results set aside for one query (none by default): kept until the query has run.
#[derive(Debug, Default)]
pub(crate) struct SharedResults {
    folder: Option<TempDir>,
    /// Each CTE set aside, by its name, and the rows it returned.
    set_aside: Vec<(String, usize)>,
    /// The files the set-aside CTEs read.
    files_read: BTreeSet<String>,
}

impl SharedResults {
    /// Each CTE set aside, by its name, and the rows it returned; the results themselves go.
    pub(crate) fn into_set_aside(self) -> Vec<(String, usize)> {
        self.set_aside
    }

    /// The query's temporary folder under `root`, made on first use.
    fn folder_in(&mut self, root: &Path) -> Result<PathBuf> {
        if let Some(folder) = &self.folder {
            return Ok(folder.path().to_path_buf());
        }
        let folder = tempfile::Builder::new()
            .prefix("ebiq-shared-")
            .tempdir_in(root)
            .with_context(|| {
                format!(
                    "cannot make a folder in {} for the results of shared CTEs",
                    root.display()
                )
            })?;
        Ok(self.folder.insert(folder).path().to_path_buf())
    }

    /// The files a query read: `by_query`, the files its plan scanned, with the files the
    /// set-aside CTEs read, less the set-aside results (which later CTEs may also read).
    pub(crate) fn files_read_with(
        &self,
        by_query: Option<BTreeSet<String>>,
    ) -> Option<BTreeSet<String>> {
        files_read_outside(
            self.folder.as_ref(),
            by_query,
            Some(self.files_read.clone()),
        )
    }
}

/// The files a query read: `by_query`, its plan's scans, with `also`, the files read for it before
/// it ran (`None` when unknown), less those in `folder`, which held results set aside for it.
pub(super) fn files_read_outside(
    folder: Option<&TempDir>,
    by_query: Option<BTreeSet<String>>,
    also: Option<BTreeSet<String>>,
) -> Option<BTreeSet<String>> {
    let Some(folder) = folder else {
        return by_query;
    };
    let folder = folder.path().to_string_lossy();
    let read = by_query?.into_iter().chain(also?);
    Some(
        read.filter(|file| !file.starts_with(folder.as_ref()))
            .collect(),
    )
}

/// A change made to each physical plan before it runs.
pub(crate) type Rewrite<'a> =
    dyn FnMut(Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> + Send + 'a;

/// `plan`, planned from a statement whose `WITH` clauses name `ctes` ([`cte_names`]), with each
/// CTE that reads a table and is referenced more than once run once (its physical plan through
/// `rewrite`) and read back from its results.
pub(crate) async fn run_shared_ctes_once(
    state: &SessionState,
    ctes: &BTreeSet<String>,
    plan: LogicalPlan,
    rewrite: &mut Rewrite<'_>,
) -> Result<(LogicalPlan, SharedResults)> {
    let room = Room {
        root: std::env::temp_dir(),
        limit: SET_ASIDE_LIMIT,
    };
    run_shared_ctes_once_in(state, ctes, plan, &room, rewrite).await
}

/// Where a query's CTEs are set aside, and how much of each.
#[derive(Debug)]
struct Room {
    /// The folder the temporary folder is made in.
    root: PathBuf,
    /// Bytes past which a CTE runs inline instead.
    limit: u64,
}

/// [`run_shared_ctes_once`] with the results in `room`. A CTE that cannot be set aside (no room
/// in the temporary folder, say) runs inline, as DataFusion would run it, with a note on stderr:
/// an error of its own then comes from the query itself.
async fn run_shared_ctes_once_in(
    state: &SessionState,
    ctes: &BTreeSet<String>,
    mut plan: LogicalPlan,
    room: &Room,
    rewrite: &mut Rewrite<'_>,
) -> Result<(LogicalPlan, SharedResults)> {
    let mut shared = SharedResults::default();
    if ctes.is_empty() || has_recursion(&plan)? {
        return Ok((plan, shared));
    }
    let mut set_aside_tables = BTreeSet::new();
    let mut left_inline = Vec::new();
    while let Some(repeated) =
        innermost_repeated_read(&plan, ctes, &set_aside_tables, &left_inline)?
    {
        let LogicalPlan::SubqueryAlias(alias) = &repeated else {
            break;
        };
        let table = format!("ebiq_shared_{}", shared.set_aside.len());
        let into = match shared.folder_in(&room.root) {
            Ok(folder) => folder.join(&table),
            Err(error) => {
                eprintln!("note: {error:#}; each CTE runs once per reference");
                return Ok((plan, shared));
            }
        };
        let written = match set_aside(state, &alias.input, &into, room.limit, rewrite).await {
            Ok(SetAside::Written(rows, files)) => Some((rows, files)),
            Ok(SetAside::TooLarge) => None,
            Err(error) => {
                eprintln!(
                    "note: the CTE {} runs once per reference: cannot set its results aside \
                     in {}: {error:#}",
                    alias.alias,
                    into.display()
                );
                None
            }
        };
        let Some((rows, files)) = written else {
            // Best effort: the folder goes with the query anyway.
            let _ = std::fs::remove_dir_all(&into);
            left_inline.push(repeated);
            continue;
        };
        shared.files_read.extend(files);
        let reader = read_back(&into, alias.input.schema().inner())?;
        let replacement = LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(
            Arc::new(LogicalPlanBuilder::scan(table.as_str(), reader, None)?.build()?),
            alias.alias.clone(),
        )?);
        plan = plan
            .transform_down_with_subqueries(|node| {
                Ok(if node == repeated {
                    Transformed::new(replacement.clone(), true, TreeNodeRecursion::Jump)
                } else {
                    Transformed::no(node)
                })
            })?
            .data;
        shared.set_aside.push((alias.alias.to_string(), rows));
        set_aside_tables.insert(table);
    }
    Ok((plan, shared))
}

/// The names `statement`'s `WITH` clauses give, as DataFusion resolves them (unquoted names in
/// lower case). In a plan, a reference to a CTE and a view read alike (an aliased subquery), and a
/// view is left alone: it may be a whole table.
pub(crate) fn cte_names(statement: &DFStatement) -> BTreeSet<String> {
    struct Names(BTreeSet<String>);
    impl Visitor for Names {
        type Break = ();
        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
            if let Some(with) = &query.with {
                self.0.extend(with.cte_tables.iter().map(|cte| {
                    let name = &cte.alias.name;
                    match name.quote_style {
                        Some(_) => name.value.clone(),
                        None => name.value.to_lowercase(),
                    }
                }));
            }
            ControlFlow::Continue(())
        }
    }
    let mut names = Names(BTreeSet::new());
    if let DFStatement::Statement(statement) = statement {
        let _ = statement.visit(&mut names);
    }
    names.0
}

/// Whether `plan` has a recursive CTE, whose work table only its own loop can read.
fn has_recursion(plan: &LogicalPlan) -> Result<bool> {
    any_node(plan, |node| {
        Ok(matches!(node, LogicalPlan::RecursiveQuery(_)))
    })
}

/// Whether `test` holds for any node of `plan`, its subqueries' included.
fn any_node(
    plan: &LogicalPlan,
    mut test: impl FnMut(&LogicalPlan) -> datafusion::error::Result<bool>,
) -> Result<bool> {
    let mut found = false;
    plan.apply_with_subqueries(|node| {
        found = test(node)?;
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })?;
    Ok(found)
}

/// The smallest reference to one of `ctes` that occurs more than once in `plan`, reads a table
/// other than those already set aside, keeps fewer rows than it reads (filters, groups or
/// limits them), calls no volatile function, refers to no outer query and is not one of
/// `left_inline`.
fn innermost_repeated_read(
    plan: &LogicalPlan,
    ctes: &BTreeSet<String>,
    set_aside: &BTreeSet<String>,
    left_inline: &[LogicalPlan],
) -> Result<Option<LogicalPlan>> {
    let mut seen: HashMap<LogicalPlan, usize> = HashMap::new();
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::SubqueryAlias(alias) = node
            && ctes.contains(alias.alias.table())
        {
            *seen.entry(node.clone()).or_default() += 1;
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    let mut best: Option<(usize, LogicalPlan)> = None;
    for (node, uses) in seen {
        if uses < 2
            || left_inline.contains(&node)
            || node.contains_outer_reference()
            || !reads_a_table(&node, set_aside)?
            || !narrows(&node)?
            || is_volatile(&node)?
        {
            continue;
        }
        let size = node_count(&node)?;
        if best.as_ref().is_none_or(|(smallest, _)| size < *smallest) {
            best = Some((size, node));
        }
    }
    Ok(best.map(|(_, node)| node))
}

fn reads_a_table(plan: &LogicalPlan, set_aside: &BTreeSet<String>) -> Result<bool> {
    any_node(plan, |node| {
        Ok(matches!(node, LogicalPlan::TableScan(scan)
            if !set_aside.contains(scan.table_name.table())))
    })
}

/// Whether `plan` filters, groups or limits rows anywhere: a CTE that only renames or computes
/// columns of a whole table would be copied whole.
fn narrows(plan: &LogicalPlan) -> Result<bool> {
    any_node(plan, |node| {
        Ok(matches!(
            node,
            LogicalPlan::Filter(_)
                | LogicalPlan::Aggregate(_)
                | LogicalPlan::Distinct(_)
                | LogicalPlan::Limit(_)
        ))
    })
}

/// Whether `plan` calls a volatile function (`random()`): DataFusion gives each reference its own
/// values, and running the CTE once would make them equal.
fn is_volatile(plan: &LogicalPlan) -> Result<bool> {
    any_node(plan, |node| {
        let mut volatile = false;
        node.apply_expressions(|expr| {
            volatile |= expr.is_volatile();
            Ok(TreeNodeRecursion::Continue)
        })?;
        Ok(volatile)
    })
}

fn node_count(plan: &LogicalPlan) -> Result<usize> {
    let mut count = 0;
    plan.apply_with_subqueries(|_| {
        count += 1;
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(count)
}

/// Bytes of results set aside for one CTE past which it runs inline instead: a CTE that keeps
/// most of a national table is cheaper to read again than to copy, and would fill the disk.
pub(super) const SET_ASIDE_LIMIT: u64 = 2 << 30;

/// What running a CTE into files gave.
enum SetAside {
    /// The rows written and the files the CTE read.
    Written(usize, BTreeSet<String>),
    /// Past its limit of bytes: abandoned.
    TooLarge,
}

/// Runs `plan` into one Arrow IPC file per output partition under `folder`, each partition on
/// its own task.
async fn set_aside(
    state: &SessionState,
    plan: &LogicalPlan,
    folder: &Path,
    limit: u64,
    rewrite: &mut Rewrite<'_>,
) -> Result<SetAside> {
    let physical = rewrite(state.create_physical_plan(plan).await?)?;
    // Set aside only in this process, whose plans show every file scan.
    let files = files_scanned(&physical).unwrap_or_default();
    let schema = plan.schema().inner().clone();
    Ok(
        match write_results(state, physical, schema, folder, limit).await? {
            Some(rows) => SetAside::Written(rows, files),
            None => SetAside::TooLarge,
        },
    )
}

/// Runs `physical` into one Arrow IPC file of `schema` per output partition under `folder`, each
/// partition on its own task: the rows written, or `None` once they pass `limit` bytes.
pub(super) async fn write_results(
    state: &SessionState,
    physical: Arc<dyn ExecutionPlan>,
    schema: SchemaRef,
    folder: &Path,
    limit: u64,
) -> Result<Option<usize>> {
    std::fs::create_dir_all(folder)
        .with_context(|| format!("cannot create {}", folder.display()))?;
    let written = Arc::new(AtomicU64::new(0));
    // Dropping the set (on an error or past the limit) stops the other partitions' writers.
    let mut writers = JoinSet::new();
    for (partition, stream) in execute_stream_partitioned(physical, state.task_ctx())?
        .into_iter()
        .enumerate()
    {
        let path = folder.join(format!("part-{partition}.arrow"));
        writers.spawn(write_partition(
            stream,
            Arc::clone(&schema),
            path,
            Arc::clone(&written),
            limit,
        ));
    }
    let mut rows = 0;
    while let Some(writer) = writers.join_next().await {
        match writer.context("a shared CTE's writer stopped")?? {
            Some(written) => rows += written,
            None => {
                writers.shutdown().await;
                return Ok(None);
            }
        }
    }
    Ok(Some(rows))
}

/// Writes `stream` to `path` as an Arrow IPC file of `schema` (the CTE's own types and
/// nullability, which the plan reading it back expects), adding the bytes written to `written`;
/// the rows written, or `None` once `written` passes `limit`.
async fn write_partition(
    mut stream: SendableRecordBatchStream,
    schema: SchemaRef,
    path: PathBuf,
    written: Arc<AtomicU64>,
    limit: u64,
) -> Result<Option<usize>> {
    let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    let counted = Counted {
        inner: BufWriter::new(file),
        written: Arc::clone(&written),
    };
    // LZ4 because the views of short strings are mostly zero bytes; it costs little to write.
    let options = IpcWriteOptions::try_new(8, false, MetadataVersion::V5)?
        .try_with_compression(Some(CompressionType::LZ4_FRAME))?;
    let mut writer = FileWriter::try_new_with_options(counted, &schema, options)?;
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        let batch = RecordBatch::try_new(Arc::clone(&schema), batch?.columns().to_vec())?;
        rows += batch.num_rows();
        writer.write(&batch)?;
        if written.load(Ordering::Relaxed) > limit {
            return Ok(None);
        }
    }
    writer
        .finish()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(Some(rows))
}

/// A writer that counts the bytes through it.
#[derive(Debug)]
struct Counted<W> {
    inner: W,
    written: Arc<AtomicU64>,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(bytes)?;
        self.written.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A table over the IPC files in `folder`, with `schema`.
pub(super) fn read_back(
    folder: &Path,
    schema: &SchemaRef,
) -> Result<Arc<dyn datafusion::logical_expr::TableSource>> {
    let url = ListingTableUrl::parse(format!("{}/", folder.display()))?;
    let options = ListingOptions::new(Arc::new(ArrowFormat)).with_file_extension(".arrow");
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(Arc::clone(schema));
    Ok(provider_as_source(Arc::new(ListingTable::try_new(config)?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int32Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::{DataFrame, SessionContext};
    use datafusion::sql::parser::DFParser;

    fn context() -> SessionContext {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int32, false)]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int32Array::from_iter_values(1..=10))],
        )
        .expect("a batch of the schema");
        let ctx = SessionContext::new();
        let table = MemTable::try_new(schema, vec![vec![batch]]).expect("a table");
        ctx.register_table("t", Arc::new(table))
            .expect("registered");
        ctx
    }

    /// `sql` run with its shared CTEs set aside, then as DataFusion runs it: both results as
    /// text, what was set aside, and the tables the rewritten plan still scans.
    async fn both_ways(
        ctx: &SessionContext,
        sql: &str,
    ) -> (String, String, Vec<(String, usize)>, Vec<String>) {
        let (state, plan) = ctx.sql(sql).await.expect("planned").into_parts();
        let (rewritten, shared) =
            run_shared_ctes_once(&state, &names_in(sql), plan.clone(), &mut Ok)
                .await
                .expect("set aside");
        let mut scans = Vec::new();
        rewritten
            .apply_with_subqueries(|node| {
                if let LogicalPlan::TableScan(scan) = node {
                    scans.push(scan.table_name.table().to_owned());
                }
                Ok(TreeNodeRecursion::Continue)
            })
            .expect("walked");
        let run = |plan| async {
            let batches = DataFrame::new(state.clone(), plan)
                .collect()
                .await
                .expect("ran");
            pretty_format_batches(&batches)
                .expect("printed")
                .to_string()
        };
        let once = run(rewritten).await;
        let inline = run(plan).await;
        (once, inline, shared.set_aside.clone(), scans)
    }

    /// The CTE names of the one statement in `sql`; none when it does not parse.
    fn names_in(sql: &str) -> BTreeSet<String> {
        DFParser::parse_sql(sql)
            .ok()
            .and_then(|mut statements| statements.pop_front())
            .map(|statement| cte_names(&statement))
            .unwrap_or_default()
    }

    #[test]
    fn cte_names_are_those_of_every_with_clause_as_datafusion_resolves_them() {
        let names = names_in(
            "WITH Big AS (SELECT 1 AS a), \"Quoted\" AS (SELECT 2 AS a) \
             SELECT * FROM big, \"Quoted\" \
             WHERE EXISTS (WITH inner_one AS (SELECT 3) SELECT * FROM inner_one)",
        );
        let expected = ["Quoted", "big", "inner_one"].map(str::to_owned);
        assert_eq!(names, BTreeSet::from(expected));
        assert!(names_in("SELECT 1").is_empty());
    }

    #[tokio::test]
    async fn a_cte_used_twice_runs_once_with_the_same_answer() {
        let ctx = context();
        let sql = "WITH big AS (SELECT a FROM t WHERE a > 3) \
                   SELECT (SELECT count(*) FROM big) AS n, (SELECT max(a) FROM big) AS top";
        let (once, inline, set_aside, scans) = both_ways(&ctx, sql).await;
        assert_eq!(once, inline);
        assert!(once.contains("| 7 | 10  |"), "{once}");
        assert_eq!(set_aside, vec![("big".to_owned(), 7)]);
        assert_eq!(scans, vec!["ebiq_shared_0", "ebiq_shared_0"]);
    }

    #[tokio::test]
    async fn the_innermost_shared_cte_is_set_aside_and_ctes_over_it_are_not() {
        let ctx = context();
        let sql = "WITH f AS (SELECT a FROM t WHERE a % 2 = 0), \
                        g AS (SELECT a, count(*) AS n FROM f GROUP BY a) \
                   SELECT g.a, g.n, h.n AS m, (SELECT count(*) FROM f) AS total \
                   FROM g JOIN g AS h ON g.a = h.a ORDER BY g.a";
        let (once, inline, set_aside, scans) = both_ways(&ctx, sql).await;
        assert_eq!(once, inline);
        assert_eq!(set_aside, vec![("f".to_owned(), 5)]);
        assert!(
            scans.iter().all(|table| table == "ebiq_shared_0"),
            "{scans:?}"
        );
    }

    #[tokio::test]
    async fn views_ctes_used_once_bare_reads_and_volatile_ctes_are_left_inline() {
        let ctx = context();
        ctx.sql("CREATE VIEW v AS SELECT a FROM t WHERE a > 3")
            .await
            .expect("view");
        for sql in [
            "SELECT x.a FROM v AS x JOIN v AS y ON x.a = y.a ORDER BY 1",
            "WITH once AS (SELECT a FROM t WHERE a > 3) SELECT count(*) FROM once",
            "WITH bare AS (SELECT * FROM t) SELECT count(*) FROM bare AS x JOIN bare AS y ON x.a = y.a",
            "WITH r AS (SELECT a, random() AS p FROM t WHERE a > 3) \
             SELECT count(*) FROM r AS x JOIN r AS y ON x.a = y.a",
        ] {
            let (once, inline, set_aside, _) = both_ways(&ctx, sql).await;
            assert_eq!(once, inline, "{sql}");
            assert!(set_aside.is_empty(), "{sql}: {set_aside:?}");
        }
    }

    /// A self-join of a shared CTE, run with its results set aside in `room`: the plan as
    /// DataFusion made it, the plan after, and what was set aside.
    async fn self_join_in(room: &Room) -> (LogicalPlan, LogicalPlan, SharedResults) {
        let sql = "WITH big AS (SELECT a FROM t WHERE a > 3) \
                   SELECT count(*) FROM big AS x JOIN big AS y ON x.a = y.a";
        let (state, plan) = context().sql(sql).await.expect("planned").into_parts();
        let (rewritten, shared) =
            run_shared_ctes_once_in(&state, &names_in(sql), plan.clone(), room, &mut Ok)
                .await
                .expect("ran");
        (plan, rewritten, shared)
    }

    #[tokio::test]
    async fn a_cte_whose_results_pass_the_limit_runs_inline() {
        let room = Room {
            root: std::env::temp_dir(),
            limit: 1,
        };
        let (plan, rewritten, shared) = self_join_in(&room).await;
        assert!(shared.set_aside.is_empty());
        assert_eq!(rewritten, plan);
        let folder = shared.folder.as_ref().expect("a folder").path().to_owned();
        assert_eq!(std::fs::read_dir(folder).expect("listed").count(), 0);
    }

    #[tokio::test]
    async fn without_room_for_the_results_every_reference_runs_the_cte() {
        let room = Room {
            root: PathBuf::from("/nonexistent/ebiq-test-no-room"),
            limit: SET_ASIDE_LIMIT,
        };
        let (plan, rewritten, shared) = self_join_in(&room).await;
        assert!(shared.set_aside.is_empty());
        assert!(shared.folder.is_none());
        assert_eq!(rewritten, plan);
    }

    #[tokio::test]
    async fn the_results_folder_goes_with_the_results_and_never_counts_as_input() {
        let room = Room {
            root: std::env::temp_dir(),
            limit: SET_ASIDE_LIMIT,
        };
        let (_, _, mut shared) = self_join_in(&room).await;
        assert_eq!(shared.set_aside, vec![("big".to_owned(), 7)]);
        let folder = shared.folder.as_ref().expect("a folder").path().to_owned();
        let part = folder.join("ebiq_shared_0").join("part-0.arrow");
        assert!(part.exists(), "{}", part.display());
        let input = "/data/opa/opa_202401.parquet".to_owned();
        let scanned = BTreeSet::from([part.display().to_string(), input.clone()]);
        // A later CTE that read this one's results.
        shared.files_read.insert(part.display().to_string());
        assert_eq!(
            shared.files_read_with(Some(scanned)),
            Some(BTreeSet::from([input]))
        );
        drop(shared);
        assert!(!folder.exists());
    }
}
