//! Where the EBI rules come from. They are read and parsed once per run; the local session, a
//! cluster client and the manifest all use that one copy, so the manifest hashes the rule text that
//! actually ran, even if the folder is edited while the queries run.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use ebiq_udfs::{Rule, builtin_rules, load_rules};

/// Where the rules come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleSource {
    /// The rule files built into the binary (`udfs/rules/`).
    BuiltIn,
    /// Every `*.sql` rule file in a folder.
    Folder(PathBuf),
}

impl RuleSource {
    /// `--rules DIR` if given, else the built-in rules.
    pub fn from_folder(folder: Option<PathBuf>) -> Self {
        folder.map_or(Self::BuiltIn, Self::Folder)
    }

    /// Reads and parses the rules.
    pub fn load(&self) -> Result<Rules> {
        let rules = match self {
            Self::BuiltIn => builtin_rules(),
            Self::Folder(dir) => load_rules(dir),
        }
        .context("cannot load the EBI rules")?;
        Ok(Rules(rules.into()))
    }
}

/// The rules of one run, parsed once and shared (cloning is cheap).
#[derive(Debug, Clone)]
pub struct Rules(Arc<[Arc<Rule>]>);

impl Rules {
    /// The rules, in file-name order.
    pub fn as_slice(&self) -> &[Arc<Rule>] {
        &self.0
    }
}
