//! One scan of a table feeding several plans at once.
//!
//! A [`FanOut`] stands in for a table: each plan that scans [`FanOut::table`] becomes one of its
//! consumers, with the columns it reads. Once every consumer is planned, [`FanOut::feed`] runs one
//! scan of the real table for the columns any of them reads and sends each batch to each consumer
//! (its own columns, without copying). A consumer's queue holds a few batches, so a slow one holds
//! the scan back rather than letting batches pile up in memory; a consumer that stops reading (a
//! limit met, its plan dropped) is let go, and the scan stops once none is left.
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

/// One plan's scan of the fan-out: the table's columns it reads, in its order, their schema, and
/// its queue.
#[derive(Debug)]
struct Consumer {
    columns: Vec<usize>,
    schema: SchemaRef,
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
        for consumer in consumers {
            let positions = consumer
                .columns
                .iter()
                .map(|column| columns.binary_search(column))
                .collect::<Result<Vec<_>, _>>()
                .or_else(|_| internal_err!("a consumer reads a column the scan does not"))?;
            feeds.push(Feed {
                positions,
                schema: consumer.schema,
                queue: consumer.queue,
            });
        }
        let mut partitions = JoinSet::new();
        for stream in execute_stream_partitioned(scan, context)? {
            partitions.spawn(feed_partition(stream, feeds.clone()));
        }
        // The consumers' queues close as the partitions' senders go, once every partition ends.
        drop(feeds);
        while let Some(partition) = partitions.join_next().await {
            partition.map_err(|error| DataFusionError::External(Box::new(error)))??;
        }
        Ok(())
    }
}

/// Where one partition of the scan sends a consumer's columns.
#[derive(Debug, Clone)]
struct Feed {
    /// The consumer's columns among the scan's.
    positions: Vec<usize>,
    /// The consumer's schema (the table's, for its columns).
    schema: SchemaRef,
    queue: mpsc::Sender<Result<RecordBatch>>,
}

async fn feed_partition(mut stream: SendableRecordBatchStream, mut feeds: Vec<Feed>) -> Result<()> {
    while let Some(batch) = stream.next().await {
        let batch = match batch {
            Ok(batch) => batch,
            Err(error) => {
                let error = Arc::new(error);
                for feed in &feeds {
                    let _ = feed
                        .queue
                        .send(Err(DataFusionError::Shared(Arc::clone(&error))))
                        .await;
                }
                return Err(DataFusionError::Shared(error));
            }
        };
        let mut still_reading = Vec::with_capacity(feeds.len());
        for feed in feeds {
            let columns = feed
                .positions
                .iter()
                .map(|&position| Arc::clone(batch.column(position)))
                .collect();
            // With the row count, since a consumer may read no column (`count(*)`).
            let rows = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
            let columns =
                RecordBatch::try_new_with_options(Arc::clone(&feed.schema), columns, &rows)?;
            if feed.queue.send(Ok(columns)).await.is_ok() {
                still_reading.push(feed);
            }
        }
        feeds = still_reading;
        if feeds.is_empty() {
            break;
        }
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
        self.0
            .consumers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Consumer {
                columns,
                schema: Arc::clone(&schema),
                queue,
            });
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Arc::new(FanOutExec {
            schema,
            receiver: Arc::new(Mutex::new(Some(receiver))),
            properties: Arc::new(properties),
        }))
    }
}

/// A consumer's scan: the batches the fan-out sends it, in one partition.
struct FanOutExec {
    schema: SchemaRef,
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
