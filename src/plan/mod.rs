//! What ebiq does to a plan around running it, for every command that runs SQL: a CTE referred to
//! more than once runs once ([`shared_ctes`]); several queries' reads of one table come from one
//! scan (`one_scan`, over `stems`, `hoist`, `fan_out`, `kept_once` and `count_groups`); a filter's
//! month range is one call (`month_range`); and what a physical plan scanned ([`scanned`]).

pub(crate) mod cores;
pub(crate) mod count_groups;
#[cfg(test)]
pub(crate) mod counting;
pub(crate) mod fan_out;
pub(crate) mod hoist;
pub(crate) mod keep_rows;
pub(crate) mod kept_once;
pub(crate) mod month_range;
pub(crate) mod one_scan;
pub mod scanned;
pub mod shared_ctes;
pub(crate) mod stems;

/// How a statement runs a CTE it refers to more than once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CteReferences {
    /// Each reference runs the CTE again (DataFusion's way; a cluster's only way, since its
    /// executors cannot read this process's temporary files).
    Inline,
    /// A CTE that reads a table runs once ([`shared_ctes`]).
    RunOnce,
}

impl CteReferences {
    /// Once, unless the session sends its plans to a cluster.
    pub fn for_session(on_cluster: bool) -> Self {
        if on_cluster {
            Self::Inline
        } else {
            Self::RunOnce
        }
    }
}
