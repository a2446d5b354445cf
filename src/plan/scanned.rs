//! What a physical plan scans: the files each file scan was given. Read by the report (the
//! manifest's files read), the summary's tap and the set-aside CTEs alike.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_plan::ExecutionPlan;

use crate::dataset::validate::file_name;

/// The files every file scan of `plan` was given: after partition pruning, before row-group
/// pruning. `None` if `plan` has no file scan (a cluster's plan hides them).
pub(crate) fn files_scanned(plan: &Arc<dyn ExecutionPlan>) -> Option<BTreeSet<String>> {
    let mut files = BTreeSet::new();
    let mut found_scan = false;
    let mut pending = vec![plan];
    while let Some(node) = pending.pop() {
        if let Some(scan) = as_file_scan(node) {
            found_scan = true;
            files.extend(scanned_files(scan).map(|(name, _)| name));
        }
        pending.extend(node.children());
    }
    found_scan.then_some(files)
}

/// The file scan `node` is, if it is one.
pub(crate) fn as_file_scan(node: &Arc<dyn ExecutionPlan>) -> Option<&FileScanConfig> {
    node.downcast_ref::<DataSourceExec>()
        .and_then(|exec| exec.data_source().downcast_ref::<FileScanConfig>())
}

/// Each file `scan` was given, named as the manifest names input files (a file split into byte
/// ranges comes once per range).
pub(crate) fn scanned_files(
    scan: &FileScanConfig,
) -> impl Iterator<Item = (String, &PartitionedFile)> {
    scan.file_groups
        .iter()
        .flat_map(|group| group.files())
        .map(|file| {
            (
                file_name(&scan.object_store_url, &file.object_meta.location),
                file,
            )
        })
}
