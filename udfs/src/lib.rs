//! NHS Evidence-Based Interventions (EBI) rules as vectorised Apache DataFusion scalar functions,
//! with answers equal to what the published T-SQL means on SQL Server.
//!
//! # Functions
//!
//! - `tsql_like(text, pattern)`: SQL Server `LIKE` ([`LikePattern`] documents the grammar).
//! - `sus_month(month)`: a valid yyyymm activity month, else NULL; `sus_month_between(month, low,
//!   high)`: `sus_month(month) BETWEEN low AND high` for constant bounds, in one pass.
//! - `sus_age_unknown(a, b)` and `sus_age_impossible(a, b)`: whether the age a rule reads,
//!   `ISNULL(a, b)`, is 999 (not known), or none of 0-130, 999 and 7001-7007.
//! - The statistics EBI analysts publish, as the PHE/OHID indicator methods and NHS Making Data
//!   Count compute them: `wilson(x, n, confidence)`, `byar(o, confidence)`,
//!   `funnel_proportion(baseline, n, confidence)`, the aggregate
//!   `dsr(count, population, standard_population, confidence, multiplier)`, the window function
//!   `xmr(value, improvement) OVER (ORDER BY ...)`, and `esp_age_band(age)` with the 2013 European
//!   Standard Population as a table ([`esp2013`]).
//! - For each rule file `rules/<name>.sql` (see [`parse_rule_file`] for the format):
//!   - `ebi_<name>(columns...)`: the rule's flag (`'2S_lower_back_imaging'`) or NULL;
//!   - `ebi_<name>_included(...)`: the code script's WHEN condition;
//!   - `ebi_<name>_excluded(...)`: whether the exclusions exclude the record;
//!   - `ebi_<name>_included_by_<column>(column)` and `ebi_<name>_excluded_by_<column>(column)`:
//!     the parts of a section that test one column, such as the inclusion by procedures
//!     (`ebi_lower_back_imaging_included_by_der_procedure_all`) or the cancer-diagnosis exclusion
//!     (`ebi_lower_back_imaging_excluded_by_der_diagnosis_all`).
//!
//!   A rule function's arguments are the columns its rule names, in the order the rule first names
//!   them; `ebi_lower_back_imaging` takes `(Der_Procedure_All, Age_at_Start_of_Episode_SUS,
//!   Der_Age_at_CDS_Activity_Date, Der_Diagnosis_All, Administrative_Category)`.
//!
//! # How the published rule is read
//!
//! - Inclusion is the code script's `CASE WHEN` condition to the letter: `LIKE` is SQL Server's,
//!   substring matches over the whole `Der_Procedure_All` list (so `U0545` contains `U054`), letters
//!   case-insensitive (`u054` matches `%U05[45]%`).
//! - Age is `ISNULL(Age_at_Start_of_Episode_SUS, Der_Age_at_CDS_Activity_Date) BETWEEN 19 AND 120`,
//!   inclusive at both ends; both NULL is unknown, so the record is not flagged. Codes such as 999
//!   (unknown) or 7001 (infant) are values like any other and fall outside the range.
//! - The published exclusions name `apcs.` columns while the code script names `opa.` ones. The
//!   exclusions are read as tests of the same activity record's own `Der_Diagnosis_All` and
//!   `Administrative_Category`: columns are matched by name, case-insensitively, whatever the table
//!   qualifier, and all exclusions are joined by AND as published.
//! - NULLs in exclusion columns follow the session setting `ebiq.null_mode` ([`NullMode`]):
//!   `intended` (default) excludes a record only when a field positively meets an exclusion; a NULL
//!   field excludes nothing. `strict_tsql` is SQL Server's three-valued logic: `NULL NOT LIKE ...`
//!   and `NULL <> '02'` are unknown, and the record is not flagged.
//! - `=` and `<>` against strings compare as SQL Server compares `varchar`: case-insensitively,
//!   trailing blanks not significant (`'02 '` = `'02'`).
//!
//! # Speed
//!
//! Every LIKE pattern a rule applies to one column is answered in one pass over each string
//! ([`PatternSet`]: one branch-free shift-and automaton over all `%body%` patterns), and a
//! predicate made only of those LIKEs is a table over their matches. On a `Utf8View` column, with
//! AVX2, a dense screen reads every row in order straight from the views, two per instruction and
//! with no branch per row, looking each body's first classes up in nibble tables (`pshufb`). For
//! bodies like the rule's (at most seven, of at most four plain characters) its answer on ASCII text
//! is exact, and it writes the predicate's bits directly; strings too long for a view are screened one
//! by one, and only non-ASCII text (or, for other bodies, text the screen passes) goes to the
//! automaton. Elsewhere an SSSE3 screen sits in front of the automaton, string by string.
//! Dictionary-encoded columns are evaluated once per distinct value; no string is copied. Within a
//! rule, each part of an AND or OR is evaluated only for the rows the earlier parts left undecided,
//! so the exclusion columns are read only for records the inclusion accepts. Literal `tsql_like`
//! patterns are compiled once and cached.

mod bits;
mod collation;
mod multi;
mod options;
mod pattern;
mod prefilter;
mod rule;
mod stats;
mod strings;
mod sus_age;
mod sus_month;
mod sus_month_between;
mod tsql_like;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use datafusion_common::{DataFusionError, Result, plan_err};
use datafusion_expr::registry::FunctionRegistry;
use datafusion_expr::{AggregateUDF, ScalarUDF, WindowUDF};

pub use multi::{MAX_PATTERNS, PatternSet};
pub use options::{EbiqOptions, NULL_MODE_HELP, NullMode, UnknownNullMode};
pub use pattern::{LikePattern, PatternError};
pub use rule::{
    ColumnKind, ExplainFunction, Number, OUTCOMES, Outcome, Predicate, Rule, RuleColumn,
    RuleFileError, RuleFunction, RuleOutput, parse_rule_file, rule_functions, split_location,
};
pub use stats::{
    Byar, Dispersion, DispersionMethod, Dsr, DsrEvents, DsrSums, ESP2013, EspAgeBand,
    FunnelProportion, FunnelRate, FunnelRatio, FunnelRatioOd, FunnelSignificance, Improvement,
    IndirectKind, IndirectStandardisation, IsrSums, Overdispersion, PersonsWithEvents, Rate,
    SpecialCause, Wilson, Xmr, XmrPoint, XmrSettings, adjusted_ratio_limits, byar_interval,
    confidence_level, count_interval, dispersion, dsr_of_events, esp_age_band, esp2013,
    exact_poisson_interval, funnel_limits, rate_funnel_limits, rate_interval, ratio_funnel_limits,
    significance, wilson_interval, xmr_chart, z_score,
};
use sus_age::{AgeCheck, SusAgeCheck};
pub use sus_month::SusMonth;
pub use sus_month_between::SusMonthBetween;
pub use tsql_like::TsqlLike;

include!(concat!(env!("OUT_DIR"), "/builtin_rules.rs"));

/// The rules built into this crate: every `rules/*.sql` file at build time.
pub fn builtin_rules() -> Result<Vec<Arc<Rule>>> {
    BUILTIN_RULES
        .iter()
        .map(|(file, text)| parse(file, text))
        .collect()
}

fn parse(file: &str, text: &str) -> Result<Arc<Rule>> {
    parse_rule_file(file, text)
        .map(Arc::new)
        .map_err(|e| DataFusionError::Plan(e.to_string()))
}

/// Reads every `*.sql` rule file in `dir`, in file-name order.
pub fn load_rules(dir: &Path) -> Result<Vec<Arc<Rule>>> {
    let context = |e: std::io::Error| {
        DataFusionError::Execution(format!("cannot read rule folder {}: {e}", dir.display()))
    };
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(context)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .map_err(context)?;
    files.retain(|path| path.extension().is_some_and(|e| e == "sql"));
    files.sort();
    files
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).map_err(|e| {
                DataFusionError::Execution(format!("cannot read rule file {}: {e}", path.display()))
            })?;
            parse(&path.display().to_string(), &text)
        })
        .collect()
}

/// Every function this crate provides: `tsql_like`, `sus_month`, the `sus_age_*` checks, the
/// statistics functions, and the functions of each rule.
#[derive(Debug, Clone)]
pub struct Functions {
    /// Scalar functions.
    pub scalar: Vec<Arc<ScalarUDF>>,
    /// Aggregate functions (`dsr`).
    pub aggregate: Vec<Arc<AggregateUDF>>,
    /// Window functions (`xmr`).
    pub window: Vec<Arc<WindowUDF>>,
}

/// The functions for `rules`, with this crate's own.
///
/// Two rules whose functions would share a name are refused, naming both rule files: one would
/// otherwise silently replace the other.
pub fn functions(rules: &[Arc<Rule>]) -> Result<Functions> {
    let mut scalar = vec![
        Arc::new(ScalarUDF::new_from_impl(TsqlLike::new())),
        Arc::new(ScalarUDF::new_from_impl(SusMonth::new())),
        Arc::new(ScalarUDF::new_from_impl(SusMonthBetween::new())),
        Arc::new(ScalarUDF::new_from_impl(SusAgeCheck::new(
            AgeCheck::Unknown,
        ))),
        Arc::new(ScalarUDF::new_from_impl(SusAgeCheck::new(
            AgeCheck::Impossible,
        ))),
        Arc::new(ScalarUDF::new_from_impl(Wilson::new())),
        Arc::new(ScalarUDF::new_from_impl(Byar::new())),
        Arc::new(ScalarUDF::new_from_impl(FunnelProportion::new())),
        Arc::new(ScalarUDF::new_from_impl(Rate::new())),
        Arc::new(ScalarUDF::new_from_impl(FunnelRatio::new())),
        Arc::new(ScalarUDF::new_from_impl(FunnelRatioOd::new())),
        Arc::new(ScalarUDF::new_from_impl(FunnelRate::new())),
        Arc::new(ScalarUDF::new_from_impl(FunnelSignificance::new())),
        Arc::new(ScalarUDF::new_from_impl(EspAgeBand::new())),
    ];
    let aggregate = vec![
        Arc::new(AggregateUDF::new_from_impl(Dsr::new())),
        Arc::new(AggregateUDF::new_from_impl(DsrEvents::new())),
        Arc::new(AggregateUDF::new_from_impl(IndirectStandardisation::new(
            IndirectKind::Ratio,
        ))),
        Arc::new(AggregateUDF::new_from_impl(IndirectStandardisation::new(
            IndirectKind::Rate,
        ))),
        Arc::new(AggregateUDF::new_from_impl(Overdispersion::new())),
    ];
    let window = vec![Arc::new(WindowUDF::new_from_impl(Xmr::new()))];
    let mut defined_by: HashMap<String, &str> = scalar
        .iter()
        .map(|f| f.name().to_owned())
        .chain(aggregate.iter().map(|f| f.name().to_owned()))
        .chain(window.iter().map(|f| f.name().to_owned()))
        .map(|name| (name, "ebiq itself"))
        .collect();
    for rule in rules {
        let explain = ScalarUDF::new_from_impl(ExplainFunction::new(rule));
        let rule_functions = rule_functions(Arc::clone(rule))
            .into_iter()
            .map(ScalarUDF::new_from_impl);
        for function in rule_functions.chain(std::iter::once(explain)) {
            let function = Arc::new(function);
            if let Some(earlier) = defined_by.insert(function.name().to_owned(), &rule.file) {
                return plan_err!(
                    "the rule files {earlier} and {} both define the function {}: rename one",
                    rule.file,
                    function.name()
                );
            }
            scalar.push(function);
        }
    }
    Ok(Functions {
        scalar,
        aggregate,
        window,
    })
}

/// Registers every function of [`functions`]. Also add [`EbiqOptions`] to the session's config
/// (`SessionConfig::with_option_extension`) so that `SET ebiq.null_mode` is accepted; without it
/// the functions use the default mode.
///
/// A function whose name the registry already holds is an error, not a silent replacement.
pub fn register_rules(registry: &mut dyn FunctionRegistry, rules: &[Arc<Rule>]) -> Result<()> {
    let functions = functions(rules)?;
    let refuse = |name: &str| {
        plan_err!("cannot register {name}: the session already has a function of that name")
    };
    for function in functions.scalar {
        let name = function.name().to_owned();
        if registry.register_udf(function)?.is_some() {
            return refuse(&name);
        }
    }
    for function in functions.aggregate {
        let name = function.name().to_owned();
        if registry.register_udaf(function)?.is_some() {
            return refuse(&name);
        }
    }
    for function in functions.window {
        let name = function.name().to_owned();
        if registry.register_udwf(function)?.is_some() {
            return refuse(&name);
        }
    }
    Ok(())
}

/// Registers `tsql_like`, `sus_month` and the functions of every built-in rule.
pub fn register_all(registry: &mut dyn FunctionRegistry) -> Result<()> {
    register_rules(registry, &builtin_rules()?)
}
