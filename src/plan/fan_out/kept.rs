//! Consumers of a fan-out that keep the same rows ([`Keep`]): the rows picked once per batch of
//! the scan, gathered into full batches, and sent to each of them.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray};
use datafusion::arrow::compute::{BatchCoalescer, is_not_null};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::cast::as_boolean_array;
use datafusion::error::Result;

use super::{Consumer, Feed, positions_in, send_to};

/// The rows a consumer is sent, when not all: those whose value in a column of the table (by its
/// index) is not NULL, or is true.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keep {
    NotNull(usize),
    True(usize),
}

impl Keep {
    pub(crate) fn column(self) -> usize {
        match self {
            Self::NotNull(column) | Self::True(column) => column,
        }
    }

    /// Which rows of a batch this keeps, given its column.
    fn rows(self, column: &ArrayRef) -> Result<BooleanArray> {
        match self {
            Self::NotNull(_) => Ok(is_not_null(column)?),
            // A NULL is not kept: the coalescer's filter drops it as `FilterExec` does.
            Self::True(_) => Ok(as_boolean_array(column)?.clone()),
        }
    }
}

/// The consumers that keep the same rows, with the columns any of them reads.
#[derive(Debug)]
pub(super) struct KeptGroup {
    keep: Keep,
    /// The columns any member reads, among the scan's.
    positions: Vec<usize>,
    /// The column `keep` tests, among the scan's.
    kept_by: usize,
    /// The schema of `positions`' columns.
    schema: SchemaRef,
    /// Each member, with its columns among `positions`'.
    members: Vec<Feed>,
}

impl KeptGroup {
    /// The group of `members`, which keep `keep`, fed by a scan of `columns` of `table`.
    pub(super) fn new(
        keep: Keep,
        members: Vec<Consumer>,
        table: &SchemaRef,
        columns: &[usize],
    ) -> Result<Self> {
        let mut read: Vec<usize> = members
            .iter()
            .flat_map(|member| member.columns.iter().copied())
            .chain([keep.column()])
            .collect();
        read.sort_unstable();
        read.dedup();
        let members = members
            .into_iter()
            .map(|member| {
                Ok(Feed {
                    positions: positions_in(&read, &member.columns)?,
                    schema: member.schema,
                    queue: member.queue,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            keep,
            positions: positions_in(columns, &read)?,
            kept_by: positions_in(columns, &[keep.column()])?[0],
            schema: Arc::new(table.project(&read)?),
            members,
        })
    }

    /// A feed of the group for one partition of the scan, in batches of `batch_size` rows.
    pub(super) fn for_partition(&self, batch_size: usize) -> KeptFeed {
        KeptFeed {
            keep: self.keep,
            positions: self.positions.clone(),
            kept_by: self.kept_by,
            rows: BatchCoalescer::new(Arc::clone(&self.schema), batch_size),
            members: self.members.clone(),
        }
    }
}

/// One partition's feed of a [`KeptGroup`]: the rows kept so far, gathered into full batches.
pub(super) struct KeptFeed {
    keep: Keep,
    positions: Vec<usize>,
    kept_by: usize,
    rows: BatchCoalescer,
    pub(super) members: Vec<Feed>,
}

impl KeptFeed {
    /// Keeps the rows of `batch` (a batch of the scan) this group keeps, and sends its members
    /// each batch filled.
    pub(super) async fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        let kept = self.keep.rows(batch.column(self.kept_by))?;
        let columns = self
            .positions
            .iter()
            .map(|&position| Arc::clone(batch.column(position)))
            .collect();
        let read = RecordBatch::try_new(self.rows.schema(), columns)?;
        self.rows.push_batch_with_filter(read, &kept)?;
        self.send_filled().await
    }

    /// Sends the rows kept but not sent yet.
    pub(super) async fn finish(&mut self) -> Result<()> {
        self.rows.finish_buffered_batch()?;
        self.send_filled().await
    }

    async fn send_filled(&mut self) -> Result<()> {
        while let Some(filled) = self.rows.next_completed_batch() {
            self.members = send_to(std::mem::take(&mut self.members), &filled).await?;
        }
        Ok(())
    }
}
