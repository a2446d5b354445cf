//! The scalar functions a rule becomes: its flag, its inclusion, its exclusion, and each
//! single-column clause of those (the inclusion by procedures, the cancer-diagnosis exclusion, ...).

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, StringArray, StringBuilder};
use arrow::buffer::BooleanBuffer;
use arrow::compute::kernels::boolean::{and_kleene, not};
use arrow::datatypes::DataType;
use datafusion_common::{Result, exec_err, plan_err};
use datafusion_expr::{
    ColumnarValue, DocSection, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature,
    Volatility,
};

use super::eval::BatchColumns;
use super::{ColumnKind, Predicate, Rule};
use crate::bits::true_rows;
use crate::options::{EbiqOptions, NULL_MODE_HELP, NullMode};
use crate::strings::is_string_type;

/// What a rule function returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleOutput {
    /// The rule's flag (`'2S_lower_back_imaging'`) when the record is included and not excluded, else NULL.
    Flag,
    /// Whether the inclusion holds (NULL when SQL would call it unknown).
    Included,
    /// Whether the exclusions exclude the record (how NULLs count depends on `ebiq.null_mode`).
    Excluded,
}

pub(super) const DOC_SECTION_EBI: DocSection = DocSection {
    include: true,
    label: "EBI rules",
    description: Some("NHS Evidence-Based Interventions rules, compiled from rule files"),
};

/// One scalar function of a rule.
#[derive(Debug)]
pub struct RuleFunction {
    name: String,
    rule: Arc<Rule>,
    output: RuleOutput,
    inclusion: Option<Predicate>,
    exclusion: Option<Predicate>,
    /// The rule column each argument carries, in argument order.
    arguments: Vec<usize>,
    /// A flag computed only on some rows ([`RuleFunction::flag_where`]): a first argument, before
    /// the columns, says which, and `inclusion` is what is left to test on them.
    guarded: bool,
    signature: Signature,
    documentation: Documentation,
}

impl PartialEq for RuleFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.output == other.output
            && self.guarded == other.guarded
            && self.rule.source == other.rule.source
    }
}

impl Eq for RuleFunction {}

impl Hash for RuleFunction {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.output.hash(state);
        self.guarded.hash(state);
        self.rule.source.hash(state);
    }
}

/// Every function of `rule`: `ebi_<rule>`, `ebi_<rule>_included`, `ebi_<rule>_excluded`, and
/// `ebi_<rule>_included_by_<column>` / `ebi_<rule>_excluded_by_<column>` for each column that a
/// part of a section tests on its own, when the section tests more than one column.
pub fn rule_functions(rule: Arc<Rule>) -> Vec<RuleFunction> {
    let base = format!("ebi_{}", rule.name);
    let mut functions = vec![RuleFunction::new(
        base.clone(),
        &rule,
        RuleOutput::Flag,
        Some(rule.inclusion.clone()),
        rule.exclusion.clone(),
    )];
    functions.push(RuleFunction::new(
        format!("{base}_included"),
        &rule,
        RuleOutput::Included,
        Some(rule.inclusion.clone()),
        None,
    ));
    for (column, clause) in single_column_clauses(&rule.inclusion) {
        let column_name = rule.columns[column].name.to_ascii_lowercase();
        functions.push(RuleFunction::new(
            format!("{base}_included_by_{column_name}"),
            &rule,
            RuleOutput::Included,
            Some(clause),
            None,
        ));
    }
    if let Some(exclusion) = &rule.exclusion {
        functions.push(RuleFunction::new(
            format!("{base}_excluded"),
            &rule,
            RuleOutput::Excluded,
            None,
            Some(exclusion.clone()),
        ));
        for (column, clause) in single_column_clauses(exclusion) {
            let column_name = rule.columns[column].name.to_ascii_lowercase();
            functions.push(RuleFunction::new(
                format!("{base}_excluded_by_{column_name}"),
                &rule,
                RuleOutput::Excluded,
                None,
                Some(clause),
            ));
        }
    }
    functions
}

/// The conjuncts of `section` that each test one column, joined per column; empty when the
/// section tests only one column (its own function already is that clause).
fn single_column_clauses(section: &Predicate) -> Vec<(usize, Predicate)> {
    if section.columns().len() < 2 {
        return Vec::new();
    }
    let mut clauses: Vec<(usize, Vec<Predicate>)> = Vec::new();
    for conjunct in section.conjuncts() {
        let [column] = conjunct.columns()[..] else {
            continue;
        };
        match clauses.iter_mut().find(|(c, _)| *c == column) {
            Some((_, parts)) => parts.push(conjunct.clone()),
            None => clauses.push((column, vec![conjunct.clone()])),
        }
    }
    clauses
        .into_iter()
        .map(|(column, mut parts)| {
            let clause = if parts.len() == 1 {
                parts.remove(0)
            } else {
                Predicate::And(parts)
            };
            (column, clause)
        })
        .collect()
}

impl RuleFunction {
    fn new(
        name: String,
        rule: &Arc<Rule>,
        output: RuleOutput,
        inclusion: Option<Predicate>,
        exclusion: Option<Predicate>,
    ) -> Self {
        let arguments = arguments_of(inclusion.iter().chain(exclusion.iter()));
        let documentation = document(&name, rule, output, &arguments);
        Self {
            name,
            rule: Arc::clone(rule),
            output,
            inclusion,
            exclusion,
            arguments,
            guarded: false,
            signature: Signature::user_defined(Volatility::Immutable),
            documentation,
        }
    }

    /// For a rule's flag and a test of its inclusion that it implies
    /// ([`RuleFunction::flag_implies`]), `<flag>_where(test, columns...)`: `CASE WHEN test THEN
    /// flag END`, the flag on the rows where the test (passed first, already computed) is TRUE,
    /// NULL on the others. On those rows the test's clauses of the inclusion hold, so only the
    /// rest of it and the exclusions are evaluated, on those rows' values alone, and the result is
    /// built at full length, where the `CASE` filtered every argument, ran the whole rule on what
    /// was kept and scattered the flags back. Not registered: SQL writes the `CASE`.
    pub fn flag_where(&self, implied: &RuleFunction) -> Option<RuleFunction> {
        self.flag_implies(implied)?;
        let flag_clauses = self.inclusion.as_ref()?.conjuncts();
        let known = implied.inclusion.as_ref()?.conjuncts();
        if !known.iter().all(|clause| flag_clauses.contains(clause)) {
            return None;
        }
        let mut rest: Vec<Predicate> = flag_clauses
            .into_iter()
            .filter(|clause| !known.contains(clause))
            .cloned()
            .collect();
        let rest = match rest.len() {
            0 => None,
            1 => Some(rest.remove(0)),
            _ => Some(Predicate::And(rest)),
        };
        let name = format!("{}_where", self.name);
        let description = format!(
            "{}'s flag on the rows where the first argument is TRUE, NULL on the others.",
            self.name
        );
        let call = format!("{name}(rows, {})", self.argument_columns().join(", "));
        Some(Self {
            name,
            rule: Arc::clone(&self.rule),
            output: self.output,
            inclusion: rest,
            exclusion: self.exclusion.clone(),
            arguments: self.arguments.clone(),
            guarded: true,
            signature: self.signature.clone(),
            documentation: Documentation::builder(DOC_SECTION_EBI, description, call).build(),
        })
    }

    /// The rule it evaluates.
    pub fn rule(&self) -> &Rule {
        &self.rule
    }

    /// What it answers.
    pub fn output(&self) -> RuleOutput {
        self.output
    }

    /// For a rule's flag and another function of the same rule that tests (part of) its
    /// inclusion: the flag is set only where the inclusion holds, so only where `other` is TRUE.
    /// Gives, for each of `other`'s arguments in order, the position of this function's argument
    /// that carries the same column (so that `other` called on those arguments is TRUE wherever
    /// this function's result is not NULL); `None` for any other pair of functions.
    pub fn flag_implies(&self, other: &RuleFunction) -> Option<Vec<usize>> {
        let same_rule = self.rule.name == other.rule.name && self.rule.source == other.rule.source;
        if self.output != RuleOutput::Flag
            || self.guarded
            || other.output != RuleOutput::Included
            || other.exclusion.is_some()
            || !same_rule
        {
            return None;
        }
        other
            .arguments
            .iter()
            .map(|column| self.arguments.iter().position(|c| c == column))
            .collect()
    }

    /// The names of the columns its arguments carry, in order.
    pub fn argument_columns(&self) -> Vec<&str> {
        self.arguments
            .iter()
            .map(|&c| self.rule.columns[c].name.as_str())
            .collect()
    }

    /// The function's result for every row, or, for a guarded flag, on the rows of `only`
    /// (FALSE elsewhere, so the flag is NULL there), where `inclusion` is what is left to test.
    fn evaluate(
        &self,
        batch: &mut BatchColumns<'_>,
        only: Option<&BooleanBuffer>,
        mode: NullMode,
    ) -> Result<Arc<dyn Array>> {
        let inclusion = match (&self.inclusion, only) {
            (Some(p), Some(rows)) => {
                let included = batch.evaluate_for(p, rows)?;
                Some(BooleanArray::new(
                    included.values() & rows,
                    included.nulls().cloned(),
                ))
            }
            (None, Some(rows)) => Some(BooleanArray::new(rows.clone(), None)),
            (Some(p), None) => Some(batch.evaluate(p)?),
            (None, None) => None,
        };
        // For the flag, the exclusions matter only where the record is included.
        let exclusion = match (&self.exclusion, &inclusion, self.output) {
            (Some(p), Some(included), RuleOutput::Flag) => {
                Some(batch.evaluate_for(p, &true_rows(included))?)
            }
            (Some(p), _, _) => Some(batch.evaluate(p)?),
            (None, _, _) => None,
        };
        match (self.output, inclusion, exclusion) {
            (RuleOutput::Flag, Some(included), exclusion) => {
                let flagged = match exclusion {
                    Some(exclusion) => and_kleene(&included, &passes(&exclusion, mode))?,
                    None => included,
                };
                Ok(Arc::new(flag_strings(&flagged, &self.rule.flag)?))
            }
            (RuleOutput::Included, Some(included), None) => Ok(Arc::new(included)),
            (RuleOutput::Excluded, None, Some(exclusion)) => Ok(Arc::new(match mode {
                NullMode::Intended => not(&passes(&exclusion, mode))?,
                NullMode::StrictTsql => not(&exclusion)?,
            })),
            _ => exec_err!(
                "{} is missing a section of rule {}",
                self.name,
                self.rule.name
            ),
        }
    }
}

/// A guarded call's first argument as the rows it keeps (TRUE, not NULL), and the call's other
/// arguments.
fn rows_argument(
    name: &str,
    mut args: ScalarFunctionArgs,
) -> Result<(BooleanBuffer, ScalarFunctionArgs)> {
    if args.args.is_empty() {
        return exec_err!("{name} takes the rows, then its columns");
    }
    let rows = args.args.remove(0).into_array(args.number_rows)?;
    let Some(rows) = rows.as_boolean_opt() else {
        return exec_err!(
            "{name}: the rows must be a boolean, got {}",
            rows.data_type()
        );
    };
    let kept = true_rows(rows);
    if !args.arg_fields.is_empty() {
        args.arg_fields.remove(0);
    }
    Ok((kept, args))
}

/// The flag where `flagged` is TRUE, NULL elsewhere: the unflagged rows (most) appended as runs
/// of NULLs, so no offset is tested again as `StringArray::try_new` would.
fn flag_strings(flagged: &BooleanArray, flag: &str) -> Result<StringArray> {
    let set = true_rows(flagged);
    let count = set.count_set_bits();
    if i32::try_from(count.saturating_mul(flag.len())).is_err() {
        return exec_err!(
            "{count} flags of {} bytes exceed a string array",
            flag.len()
        );
    }
    let mut flags = StringBuilder::with_capacity(set.len(), count * flag.len());
    let mut next = 0;
    for (start, end) in set.set_slices() {
        flags.append_nulls(start - next);
        for _ in start..end {
            flags.append_value(flag);
        }
        next = end;
    }
    flags.append_nulls(set.len() - next);
    Ok(flags.finish())
}

/// Whether each record passes the exclusions: strictly when they are TRUE, or, in the intended
/// reading, unless they are FALSE (a NULL field excludes nothing).
fn passes(exclusion: &BooleanArray, mode: NullMode) -> BooleanArray {
    match (mode, exclusion.nulls()) {
        (NullMode::Intended, Some(nulls)) => {
            BooleanArray::new(exclusion.values() | &!nulls.inner(), None)
        }
        _ => exclusion.clone(),
    }
}

impl ScalarUDFImpl for RuleFunction {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.output {
            RuleOutput::Flag => DataType::Utf8,
            RuleOutput::Included | RuleOutput::Excluded => DataType::Boolean,
        })
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if !self.guarded {
            return coerce_arguments(&self.name, &self.rule, &self.arguments, arg_types);
        }
        let Some((rows, columns)) = arg_types.split_first() else {
            return plan_err!("{} takes the rows, then its columns", self.name);
        };
        if !matches!(rows, DataType::Boolean | DataType::Null) {
            return plan_err!("{}: the rows must be a boolean, got {rows}", self.name);
        }
        let mut types = vec![DataType::Boolean];
        types.extend(coerce_arguments(
            &self.name,
            &self.rule,
            &self.arguments,
            columns,
        )?);
        Ok(types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let mode = null_mode_of(&args);
        let (only, args) = match self.guarded {
            true => {
                let (rows, args) = rows_argument(&self.name, args)?;
                (Some(rows), args)
            }
            false => (None, args),
        };
        let mut batch = batch_of(&self.name, &self.rule, &self.arguments, &args)?;
        let result = self.evaluate(&mut batch, only.as_ref(), mode)?;
        debug_assert_eq!(result.len(), batch.rows());
        Ok(ColumnarValue::Array(result))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.documentation)
    }
}

/// The rule columns `sections` read, in order of first appearance: a rule function's arguments.
pub(super) fn arguments_of<'a>(sections: impl IntoIterator<Item = &'a Predicate>) -> Vec<usize> {
    let mut arguments = Vec::new();
    for predicate in sections {
        for column in predicate.columns() {
            if !arguments.contains(&column) {
                arguments.push(column);
            }
        }
    }
    arguments
}

/// A call's argument arrays as the batch of rule columns they carry.
pub(super) fn batch_of<'a>(
    name: &str,
    rule: &'a Rule,
    arguments: &[usize],
    args: &ScalarFunctionArgs,
) -> Result<BatchColumns<'a>> {
    let arrays = ColumnarValue::values_to_arrays(&args.args)?;
    if arrays.len() != arguments.len() {
        return exec_err!(
            "{name} takes {} arguments, got {}",
            arguments.len(),
            arrays.len()
        );
    }
    let mut batch = BatchColumns::new(rule, args.number_rows);
    for (array, &column) in arrays.into_iter().zip(arguments) {
        batch.set(column, array);
    }
    Ok(batch)
}

/// The `ebiq.null_mode` a call runs under.
pub(super) fn null_mode_of(args: &ScalarFunctionArgs) -> NullMode {
    args.config_options
        .extensions
        .get::<EbiqOptions>()
        .map(|options| options.null_mode)
        .unwrap_or_default()
}

/// The argument types a rule function `name` taking `arguments` accepts for `arg_types`: text
/// columns keep their string type, numbers their numeric type, NULL and text for a number become
/// Float64 (text as SQL Server converts it); anything else is a planning error
/// naming the argument and its column.
pub(super) fn coerce_arguments(
    name: &str,
    rule: &Rule,
    arguments: &[usize],
    arg_types: &[DataType],
) -> Result<Vec<DataType>> {
    if arg_types.len() != arguments.len() {
        let columns: Vec<&str> = arguments
            .iter()
            .map(|&c| rule.columns[c].name.as_str())
            .collect();
        return plan_err!(
            "{name} takes {} arguments ({}), got {}",
            arguments.len(),
            columns.join(", "),
            arg_types.len()
        );
    }
    arg_types
        .iter()
        .zip(arguments)
        .enumerate()
        .map(|(position, (data_type, &column))| {
            let column = &rule.columns[column];
            match (column.kind, data_type) {
                (_, DataType::Null) if column.kind == ColumnKind::Text => Ok(DataType::Utf8),
                (ColumnKind::Text, t) if is_string_type(t) => Ok(t.clone()),
                // A numeric column is read as it is (`BETWEEN` compares each native type as its
                // f64, as a cast would); a cast to Float64 here would copy every row's age, when
                // the rule reads only the rows its procedures include.
                (ColumnKind::Number, t) if t.is_numeric() => Ok(t.clone()),
                (ColumnKind::Number, t) if t.is_null() || is_string_type(t) => {
                    Ok(DataType::Float64)
                }
                (kind, t) => plan_err!(
                    "{name}: argument {} ({}) must be {}, got {t}",
                    position + 1,
                    column.name,
                    match kind {
                        ColumnKind::Text => "a string",
                        ColumnKind::Number => "a number",
                    }
                ),
            }
        })
        .collect()
}

fn document(name: &str, rule: &Rule, output: RuleOutput, arguments: &[usize]) -> Documentation {
    let name_of_rule = rule.title.as_deref().unwrap_or(&rule.name);
    let edition = rule.edition();
    let title = if edition.is_empty() {
        name_of_rule.to_owned()
    } else {
        format!("{name_of_rule} ({edition})")
    };
    let description = match output {
        RuleOutput::Flag => format!(
            "EBI rule '{title}' (rule file {}): returns '{}' when the record meets the code script's \
             WHEN condition and passes its exclusions, else NULL. ebiq.null_mode: \
             {NULL_MODE_HELP}.",
            rule.file, rule.flag
        ),
        RuleOutput::Included => format!(
            "EBI rule '{title}': whether the record meets this part of the code script's WHEN \
             condition (NULL where SQL Server would find it unknown)."
        ),
        RuleOutput::Excluded => format!(
            "EBI rule '{title}': whether this part of the rule's exclusions excludes the record \
             (under 'intended', false for a NULL field; under 'strict_tsql', NULL where SQL Server \
             would find it unknown). ebiq.null_mode: {NULL_MODE_HELP}."
        ),
    };
    let columns: Vec<&str> = arguments
        .iter()
        .map(|&c| rule.columns[c].name.as_str())
        .collect();
    let call = format!("{name}({})", columns.join(", "));
    let example = match output {
        RuleOutput::Flag => format!("SELECT count(*) FROM opa WHERE {call} IS NOT NULL"),
        _ => format!("SELECT count(*) FROM opa WHERE {call}"),
    };
    let mut builder = Documentation::builder(DOC_SECTION_EBI, description, call)
        .with_sql_example(format!("```sql\n{example};\n```"));
    for &column in arguments {
        let column = &rule.columns[column];
        let written = if column.qualifiers.is_empty() {
            column.name.clone()
        } else {
            column
                .qualifiers
                .iter()
                .map(|q| format!("{q}.{}", column.name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        builder = builder.with_argument(
            column.name.clone(),
            format!("{} column, written {written} in the rule", column.kind),
        );
    }
    builder.build()
}
