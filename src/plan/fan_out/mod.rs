//! One scan of a table feeding several plans at once.
//!
//! A [`FanOut`] stands in for a table: each plan that scans [`FanOut::table`] becomes one of its
//! consumers, with the columns it reads. Once every consumer is planned, [`FanOut::feed`] runs one
//! scan of the real table for the columns any of them reads and sends each batch to each consumer
//! (its own columns, without copying), or only the rows it keeps ([`Keep`]): several consumers that
//! keep the same rows have them picked once, into full batches. A consumer's queue holds a few
//! batches, so a slow one holds the scan back rather than letting batches pile up in memory; a
//! consumer that stops reading (a limit met, its plan dropped) is let go, and the scan stops once
//! none is left.
//!
//! The consumers must all be running while the scan is fed, each reading its queue whenever it
//! needs input: a plan whose only input is the fan-out (no join to another input that it reads
//! first) always does.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, exec_err, internal_err};
use datafusion::datasource::TableType;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    execute_stream_partitioned,
};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

mod kept;

pub(crate) use kept::Keep;
use kept::{KeptFeed, KeptGroup};

/// Batches a consumer's queue holds before the scan waits for it.
const QUEUED_BATCHES: usize = 4;

/// A table's one scan and the plans it feeds.
#[derive(Debug)]
pub(crate) struct FanOut {
    /// The table's schema, as the consumers see it.
    schema: SchemaRef,
    consumers: Mutex<Vec<Consumer>>,
    /// Columns the scan reads for a reader of its own (the run summary's tap), besides the
    /// consumers'.
    also_read: Mutex<Vec<usize>>,
}

/// One plan's scan of the fan-out: the table's columns it reads, in its order, their schema, the
/// rows it is sent (all, if `keep` is `None`), and its queue.
#[derive(Debug)]
struct Consumer {
    columns: Vec<usize>,
    schema: SchemaRef,
    keep: Option<Keep>,
    queue: mpsc::Sender<Result<RecordBatch>>,
}

impl FanOut {
    /// A fan-out of a table with `schema`, with no consumers yet.
    pub(crate) fn new(schema: SchemaRef) -> Arc<Self> {
        Arc::new(Self {
            schema,
            consumers: Mutex::new(Vec::new()),
            also_read: Mutex::new(Vec::new()),
        })
    }

    /// The table plans scan to become consumers; it has the real table's schema.
    pub(crate) fn table(self: &Arc<Self>) -> Arc<dyn TableProvider> {
        Arc::new(FanOutTable(Arc::clone(self)))
    }

    /// Has the scan read `columns` (of the table) too, whether or not a consumer reads them.
    pub(crate) fn read_also(&self, columns: &[usize]) {
        self.also_read
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(columns);
    }

    /// The table's columns `consumer` reads, in its order.
    pub(crate) fn columns_of(&self, consumer: usize) -> Option<Vec<usize>> {
        let consumers = self
            .consumers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        consumers.get(consumer).map(|found| found.columns.clone())
    }

    /// Sends `consumer` only the rows `keep` keeps; `keep`'s column must be one it reads.
    pub(crate) fn keep_rows(&self, consumer: usize, keep: Keep) {
        let mut consumers = self
            .consumers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = consumers.get_mut(consumer) {
            found.keep = Some(keep);
        }
    }

    /// The table's columns any consumer reads (and those of [`FanOut::read_also`]), in the
    /// table's order: the columns the scan given to [`FanOut::feed`] must return, in this order.
    pub(crate) fn columns_read(&self) -> Vec<usize> {
        let consumers = self
            .consumers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let also = self
            .also_read
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut columns: Vec<usize> = consumers
            .iter()
            .flat_map(|consumer| consumer.columns.iter().copied())
            .chain(also.iter().copied())
            .collect();
        columns.sort_unstable();
        columns.dedup();
        columns
    }

    /// Runs `scan` (which returns the columns [`FanOut::columns_read`] gives, in that order) and
    /// sends every batch to every consumer still reading; each partition on its own task. An
    /// error of the scan goes to every consumer too. No consumer can join afterwards.
    pub(crate) async fn feed(
        &self,
        scan: Arc<dyn ExecutionPlan>,
        context: Arc<TaskContext>,
    ) -> Result<()> {
        let columns = self.columns_read();
        let consumers = std::mem::take(
            &mut *self
                .consumers
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let mut feeds = Vec::with_capacity(consumers.len());
        let mut groups: Vec<(Keep, Vec<Consumer>)> = Vec::new();
        for consumer in consumers {
            let Some(keep) = consumer.keep else {
                feeds.push(Feed {
                    positions: positions_in(&columns, &consumer.columns)?,
                    schema: consumer.schema,
                    queue: consumer.queue,
                });
                continue;
            };
            match groups.iter_mut().find(|(kept, _)| *kept == keep) {
                Some((_, members)) => members.push(consumer),
                None => groups.push((keep, vec![consumer])),
            }
        }
        let kept = groups
            .into_iter()
            .map(|(keep, members)| KeptGroup::new(keep, members, &self.schema, &columns))
            .collect::<Result<Vec<_>>>()?;
        let batch_size = context.session_config().batch_size();
        let mut partitions = JoinSet::new();
        for stream in execute_stream_partitioned(scan, context)? {
            let kept = kept
                .iter()
                .map(|group| group.for_partition(batch_size))
                .collect();
            partitions.spawn(feed_partition(stream, feeds.clone(), kept));
        }
        // The consumers' queues close as the partitions' senders go, once every partition ends.
        drop((feeds, kept));
        while let Some(partition) = partitions.join_next().await {
            partition.map_err(|error| DataFusionError::External(Box::new(error)))??;
        }
        Ok(())
    }
}

/// Where one partition of the scan sends a consumer's columns.
#[derive(Debug, Clone)]
pub(super) struct Feed {
    /// The consumer's columns among the scan's.
    positions: Vec<usize>,
    /// The consumer's schema (the table's, for its columns).
    schema: SchemaRef,
    queue: mpsc::Sender<Result<RecordBatch>>,
}

/// Where in `columns` (the scan's, in the table's order) each of `wanted` is.
fn positions_in(columns: &[usize], wanted: &[usize]) -> Result<Vec<usize>> {
    wanted
        .iter()
        .map(|column| columns.binary_search(column))
        .collect::<Result<Vec<_>, _>>()
        .or_else(|_| internal_err!("a consumer reads a column the scan does not"))
}

/// Sends each of `feeds` its columns of `batch`; returns those still reading.
async fn send_to(feeds: Vec<Feed>, batch: &RecordBatch) -> Result<Vec<Feed>> {
    let mut still_reading = Vec::with_capacity(feeds.len());
    for feed in feeds {
        let columns = feed
            .positions
            .iter()
            .map(|&position| Arc::clone(batch.column(position)))
            .collect();
        // With the row count, since a consumer may read no column (`count(*)`).
        let rows = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        let columns = RecordBatch::try_new_with_options(Arc::clone(&feed.schema), columns, &rows)?;
        if feed.queue.send(Ok(columns)).await.is_ok() {
            still_reading.push(feed);
        }
    }
    Ok(still_reading)
}

async fn feed_partition(
    mut stream: SendableRecordBatchStream,
    mut feeds: Vec<Feed>,
    mut kept: Vec<KeptFeed>,
) -> Result<()> {
    while let Some(batch) = stream.next().await {
        let batch = match batch {
            Ok(batch) => batch,
            Err(error) => {
                let error = Arc::new(error);
                let members = kept.iter().flat_map(|group| &group.members);
                for feed in feeds.iter().chain(members) {
                    let _ = feed
                        .queue
                        .send(Err(DataFusionError::Shared(Arc::clone(&error))))
                        .await;
                }
                return Err(DataFusionError::Shared(error));
            }
        };
        feeds = send_to(feeds, &batch).await?;
        for group in &mut kept {
            group.push(&batch).await?;
        }
        kept.retain(|group| !group.members.is_empty());
        if feeds.is_empty() && kept.is_empty() {
            break;
        }
    }
    for group in &mut kept {
        group.finish().await?;
    }
    Ok(())
}

/// The fan-out as a table: scanning it makes a consumer.
#[derive(Debug)]
struct FanOutTable(Arc<FanOut>);

#[async_trait]
impl TableProvider for FanOutTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.0.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        // Each consumer filters its rows itself (filters are not pushed into this table).
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let columns = match projection {
            Some(columns) => columns.clone(),
            None => (0..self.0.schema.fields().len()).collect(),
        };
        let schema = Arc::new(self.0.schema.project(&columns)?);
        let (queue, receiver) = mpsc::channel(QUEUED_BATCHES);
        let mut consumers = self
            .0
            .consumers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let consumer = consumers.len();
        consumers.push(Consumer {
            columns,
            schema: Arc::clone(&schema),
            keep: None,
            queue,
        });
        drop(consumers);
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Arc::new(FanOutExec {
            schema,
            consumer,
            receiver: Arc::new(Mutex::new(Some(receiver))),
            properties: Arc::new(properties),
        }))
    }
}

/// A consumer's scan: the batches the fan-out sends it, in one partition.
pub(crate) struct FanOutExec {
    schema: SchemaRef,
    /// Its place among the fan-out's consumers.
    consumer: usize,
    receiver: Arc<Mutex<Option<mpsc::Receiver<Result<RecordBatch>>>>>,
    properties: Arc<PlanProperties>,
}

impl fmt::Debug for FanOutExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FanOutExec")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl FanOutExec {
    pub(crate) fn consumer(&self) -> usize {
        self.consumer
    }
}

impl DisplayAs for FanOutExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FanOutExec: one scan shared with other plans")
    }
}

impl ExecutionPlan for FanOutExec {
    fn name(&self) -> &str {
        "FanOutExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !children.is_empty() {
            return exec_err!("FanOutExec takes no input, not {}", children.len());
        }
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return internal_err!("FanOutExec has one partition, not {partition}");
        }
        let Some(receiver) = self
            .receiver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return exec_err!("a shared scan's consumer runs only once");
        };
        let batches = futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|batch| (batch, receiver))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            batches,
        )))
    }
}
