//! Session settings read by the rule UDFs at execution time (`SET ebiq.null_mode = 'strict_tsql'`).

use std::fmt;
use std::str::FromStr;

use datafusion_common::config::ConfigExtension;
use datafusion_common::{config_field, extensions_options};

/// How a NULL in a column named by a rule's exclusions is treated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum NullMode {
    /// A record is excluded only when a field positively meets an exclusion (its diagnoses match a
    /// cancer pattern, its administrative category is `'02'`); a NULL field excludes nothing. This is
    /// the programme's intended reading (its global cancer exclusion ends `or der_diagnosis_all IS NULL`).
    #[default]
    Intended,
    /// SQL Server three-valued logic to the letter: `NULL NOT LIKE '...'` and `NULL <> '02'` are
    /// unknown, so the record is not flagged. Use it to reconcile with figures produced on SQL Server.
    StrictTsql,
}

impl NullMode {
    pub const NAMES: [&'static str; 2] = ["intended", "strict_tsql"];
}

/// A `null_mode` value that is not one of [`NullMode::NAMES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownNullMode(pub String);

impl fmt::Display for UnknownNullMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown null mode '{}': expected one of {}",
            self.0,
            NullMode::NAMES.join(", ")
        )
    }
}

impl std::error::Error for UnknownNullMode {}

impl FromStr for NullMode {
    type Err = UnknownNullMode;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim().to_ascii_lowercase().as_str() {
            "intended" => Ok(Self::Intended),
            "strict_tsql" => Ok(Self::StrictTsql),
            _ => Err(UnknownNullMode(value.to_owned())),
        }
    }
}

impl fmt::Display for NullMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Intended => "intended",
            Self::StrictTsql => "strict_tsql",
        })
    }
}

config_field!(NullMode);

extensions_options! {
    /// Settings of the EBI rule functions, under the `ebiq.` prefix.
    pub struct EbiqOptions {
        /// How NULLs in exclusion columns are read: 'intended' (a NULL excludes nothing) or
        /// 'strict_tsql' (SQL Server three-valued logic: the record is dropped)
        pub null_mode: NullMode, default = NullMode::Intended
    }
}

impl ConfigExtension for EbiqOptions {
    const PREFIX: &'static str = "ebiq";
}
