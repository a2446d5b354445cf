//! `ebi_<rule>_explain(...)`: why a record was (or was not) flagged, for reconciling a count with
//! SQL Server or answering a trust that disputes its figure. Same arguments as `ebi_<rule>`; one
//! struct per record, worked out part by part with the same evaluator as the rule functions.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, ListBuilder, StringArray, StringBuilder,
    StructArray,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Fields, Float64Type};
use datafusion_common::Result;
use datafusion_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::eval::BatchColumns;
use super::function::{DOC_SECTION_EBI, batch_of, coerce_arguments, null_mode_of};
use super::{Number, Predicate, Rule};
use crate::options::{NULL_MODE_HELP, NullMode};

/// What the rule decided for a record, as its explanation's `outcome` field says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Included and not excluded: the rule's flag.
    Flagged,
    /// The inclusion is false.
    NotIncluded,
    /// The inclusion is NULL (a NULL column it reads decides it).
    InclusionUnknown,
    /// Included, and an exclusion fires.
    Excluded,
    /// Included, no exclusion fires, but one is NULL and `ebiq.null_mode` is `strict_tsql`, under
    /// which SQL Server's `NOT (...)` of an unknown does not flag.
    ExclusionUnknown,
}

impl Outcome {
    /// The decision for a record from its inclusion's truth, whether an exclusion fired, and
    /// whether one is unknown.
    pub fn of(included: Option<bool>, any_fired: bool, any_unknown: bool, mode: NullMode) -> Self {
        match included {
            Some(false) => Self::NotIncluded,
            None => Self::InclusionUnknown,
            Some(true) if any_fired => Self::Excluded,
            Some(true) if any_unknown && mode == NullMode::StrictTsql => Self::ExclusionUnknown,
            Some(true) => Self::Flagged,
        }
    }

    /// The word the `outcome` field holds.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Flagged => "flagged",
            Self::NotIncluded => "not included",
            Self::InclusionUnknown => "inclusion unknown",
            Self::Excluded => "excluded",
            Self::ExclusionUnknown => "exclusion unknown",
        }
    }
}

/// What a record's explanation says happened, one of these words.
pub const OUTCOMES: [&str; 5] = [
    Outcome::Flagged.as_str(),
    Outcome::NotIncluded.as_str(),
    Outcome::InclusionUnknown.as_str(),
    Outcome::Excluded.as_str(),
    Outcome::ExclusionUnknown.as_str(),
];

/// `ebi_<rule>_explain`: the parts of the rule that decided each record.
#[derive(Debug)]
pub struct ExplainFunction {
    name: String,
    rule: Arc<Rule>,
    arguments: Vec<usize>,
    /// Every LIKE of the inclusion, un-negated, with its text.
    inclusion_likes: Vec<(Predicate, String)>,
    /// The exclusions as published (the conjuncts a record must pass), with the text that says
    /// what fires each one.
    exclusions: Vec<(Predicate, String)>,
    /// The first BETWEEN's value: the age a rule tests.
    age: Option<Number>,
    signature: Signature,
    documentation: Documentation,
}

impl PartialEq for ExplainFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.rule.source == other.rule.source
    }
}

impl Eq for ExplainFunction {}

impl Hash for ExplainFunction {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.rule.source.hash(state);
    }
}

impl ExplainFunction {
    /// The explain function of `rule`.
    pub fn new(rule: &Arc<Rule>) -> Self {
        let name = format!("ebi_{}_explain", rule.name);
        let arguments = rule.flag_argument_columns();
        let mut inclusion_likes = Vec::new();
        collect_likes(&rule.inclusion, &mut inclusion_likes);
        let inclusion_likes = inclusion_likes
            .into_iter()
            .map(|like| {
                let text = render(rule, &like);
                (like, text)
            })
            .collect();
        let exclusions = rule
            .exclusion
            .iter()
            .flat_map(Predicate::conjuncts)
            .map(|part| (part.clone(), render_negation(rule, part)))
            .collect();
        let age = first_between(&rule.inclusion)
            .or_else(|| rule.exclusion.as_ref().and_then(first_between))
            .cloned();
        let call = format!("{name}({})", rule.flag_arguments().join(", "));
        let documentation = Documentation::builder(
            DOC_SECTION_EBI,
            format!(
                "Why EBI rule '{}' flags a record or not, as a struct: outcome (one of {}), flag, \
                 included, inclusion_matched (the inclusion's LIKEs that match), age and age_from \
                 (the value the rule's BETWEEN tested and the column it came from), \
                 exclusions_fired, exclusions_unknown (the NULL columns that leave exclusions \
                 undecided, with how many) and \
                 null_mode ({NULL_MODE_HELP}). The outcome is 'flagged' exactly where {} is not \
                 NULL.",
                rule.title.as_deref().unwrap_or(&rule.name),
                OUTCOMES.join(", "),
                format_args!("ebi_{}", rule.name),
            ),
            call.clone(),
        )
        .with_sql_example(format!(
            "```sql\nSELECT opa_ident, {call}['outcome'] FROM opa LIMIT 5;\n```"
        ))
        .build();
        Self {
            name,
            rule: Arc::clone(rule),
            arguments,
            inclusion_likes,
            exclusions,
            age,
            signature: Signature::user_defined(Volatility::Immutable),
            documentation,
        }
    }

    /// Appends the exclusions that fire for `row` to `fired`, and to `unknown` the NULL columns
    /// that leave others undecided (each set of columns once, with how many exclusions it leaves
    /// undecided); returns whether any fired and whether any is undecided.
    fn explain_exclusions(
        &self,
        values: &[BooleanArray],
        batch: &BatchColumns<'_>,
        row: usize,
        fired: &mut StringBuilder,
        unknown: &mut StringBuilder,
    ) -> Result<(bool, bool)> {
        let mut any_fired = false;
        let mut undecided = Vec::<(String, usize)>::new();
        for ((part, fires), value) in self.exclusions.iter().zip(values) {
            match truth(value, row) {
                Some(false) => {
                    fired.append_value(fires);
                    any_fired = true;
                }
                None => {
                    // Only a NULL makes a part unknown.
                    let nulls = self.null_columns(part, batch, row)?;
                    match undecided.iter_mut().find(|(columns, _)| *columns == nulls) {
                        Some((_, count)) => *count += 1,
                        None => undecided.push((nulls, 1)),
                    }
                }
                Some(true) => {}
            }
        }
        for (columns, count) in &undecided {
            let exclusions = if *count == 1 {
                "exclusion"
            } else {
                "exclusions"
            };
            unknown.append_value(format!("{columns} NULL: {count} {exclusions} unknown"));
        }
        Ok((any_fired, !undecided.is_empty()))
    }

    /// The columns of `part` that are NULL in `row`, as `a, b`.
    fn null_columns(
        &self,
        part: &Predicate,
        batch: &BatchColumns<'_>,
        row: usize,
    ) -> Result<String> {
        let mut names = Vec::new();
        for column in part.columns() {
            if batch.array(column)?.is_null(row) {
                names.push(column_name(&self.rule, column));
            }
        }
        Ok(names.join(", "))
    }

    fn fields() -> Fields {
        let list = || DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)));
        Fields::from(vec![
            Field::new("outcome", DataType::Utf8, false),
            Field::new("flag", DataType::Utf8, true),
            Field::new("included", DataType::Boolean, true),
            Field::new("inclusion_matched", list(), false),
            Field::new("age", DataType::Float64, true),
            Field::new("age_from", DataType::Utf8, true),
            Field::new("exclusions_fired", list(), false),
            Field::new("exclusions_unknown", list(), false),
            Field::new("null_mode", DataType::Utf8, false),
        ])
    }
}

impl ScalarUDFImpl for ExplainFunction {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(Self::fields()))
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_arguments(&self.name, &self.rule, &self.arguments, arg_types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let mode = null_mode_of(&args);
        let rows = args.number_rows;
        let mut batch = batch_of(&self.name, &self.rule, &self.arguments, &args)?;
        let included = batch.evaluate(&self.rule.inclusion)?;
        let likes = self
            .inclusion_likes
            .iter()
            .map(|(like, _)| batch.evaluate(like))
            .collect::<Result<Vec<_>>>()?;
        let exclusions = self
            .exclusions
            .iter()
            .map(|(part, _)| batch.evaluate(part))
            .collect::<Result<Vec<_>>>()?;
        let age = self
            .age
            .as_ref()
            .map(|number| number_values(number, &batch))
            .transpose()?;

        let mut outcome = StringBuilder::new();
        let mut flag = StringBuilder::new();
        let mut matched = ListBuilder::new(StringBuilder::new());
        let mut fired = ListBuilder::new(StringBuilder::new());
        let mut unknown = ListBuilder::new(StringBuilder::new());
        let mut ages = Vec::with_capacity(rows);
        let mut age_from = StringBuilder::new();
        for row in 0..rows {
            for ((_, text), value) in self.inclusion_likes.iter().zip(&likes) {
                if truth(value, row) == Some(true) {
                    matched.values().append_value(text);
                }
            }
            matched.append(true);
            let (any_fired, any_unknown) = self.explain_exclusions(
                &exclusions,
                &batch,
                row,
                fired.values(),
                unknown.values(),
            )?;
            fired.append(true);
            unknown.append(true);
            let decided = Outcome::of(truth(&included, row), any_fired, any_unknown, mode);
            outcome.append_value(decided.as_str());
            flag.append_option((decided == Outcome::Flagged).then_some(self.rule.flag.as_str()));
            let (value, column) = age
                .as_ref()
                .and_then(|(values, from)| {
                    values.is_valid(row).then(|| (values.value(row), from[row]))
                })
                .unzip();
            ages.push(value);
            age_from.append_option(column.flatten().map(|c| self.rule.columns[c].name.as_str()));
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(outcome.finish()),
            Arc::new(flag.finish()),
            Arc::new(included),
            Arc::new(matched.finish()),
            Arc::new(Float64Array::from(ages)),
            Arc::new(age_from.finish()),
            Arc::new(fired.finish()),
            Arc::new(unknown.finish()),
            Arc::new(StringArray::from(vec![mode.to_string(); rows])),
        ];
        Ok(ColumnarValue::Array(Arc::new(StructArray::try_new(
            Self::fields(),
            columns,
            None,
        )?)))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.documentation)
    }
}

fn truth(values: &BooleanArray, row: usize) -> Option<bool> {
    values.is_valid(row).then(|| values.value(row))
}

/// `number` for each row as Float64, with the rule column each value came from (for `ISNULL(a,
/// b)`, `a`'s where it is not NULL, else `b`'s).
fn number_values(
    number: &Number,
    batch: &BatchColumns<'_>,
) -> Result<(Float64Array, Vec<Option<usize>>)> {
    match number {
        Number::Column(column) => {
            let values = cast(batch.array(*column)?, &DataType::Float64)?;
            let values = values.as_primitive::<Float64Type>().clone();
            let from = (0..values.len())
                .map(|row| values.is_valid(row).then_some(*column))
                .collect();
            Ok((values, from))
        }
        Number::IsNull(first, second) => {
            let (first, first_from) = number_values(first, batch)?;
            let (second, second_from) = number_values(second, batch)?;
            let values = (0..first.len())
                .map(|row| {
                    if first.is_valid(row) {
                        Some(first.value(row))
                    } else {
                        second.is_valid(row).then(|| second.value(row))
                    }
                })
                .collect();
            let from = first_from
                .into_iter()
                .zip(second_from)
                .map(|(first, second)| first.or(second))
                .collect();
            Ok((values, from))
        }
    }
}

/// Every LIKE in `predicate`, un-negated, in the order written, without repeats.
fn collect_likes(predicate: &Predicate, found: &mut Vec<Predicate>) {
    match predicate {
        Predicate::Like {
            column, pattern, ..
        } => {
            let like = Predicate::Like {
                column: *column,
                pattern: *pattern,
                negated: false,
            };
            let seen = found.iter().any(|p| {
                matches!(p, Predicate::Like { column: c, pattern: q, .. } if c == column && q == pattern)
            });
            if !seen {
                found.push(like);
            }
        }
        Predicate::Not(inner) => collect_likes(inner, found),
        Predicate::And(parts) | Predicate::Or(parts) => {
            parts.iter().for_each(|p| collect_likes(p, found));
        }
        _ => {}
    }
}

fn first_between(predicate: &Predicate) -> Option<&Number> {
    match predicate {
        Predicate::Between { value, .. } => Some(value),
        Predicate::Not(inner) => first_between(inner),
        Predicate::And(parts) | Predicate::Or(parts) => parts.iter().find_map(first_between),
        _ => None,
    }
}

fn column_name(rule: &Rule, column: usize) -> String {
    let column = &rule.columns[column];
    match column.qualifiers.first() {
        Some(table) => format!("{table}.{}", column.name),
        None => column.name.clone(),
    }
}

fn render_number(rule: &Rule, number: &Number) -> String {
    match number {
        Number::Column(column) => column_name(rule, *column),
        Number::IsNull(first, second) => format!(
            "ISNULL({}, {})",
            render_number(rule, first),
            render_number(rule, second)
        ),
    }
}

/// `predicate` as T-SQL, as a person reads it in the rule.
fn render(rule: &Rule, predicate: &Predicate) -> String {
    let not = |negated: bool| if negated { "NOT " } else { "" };
    match predicate {
        Predicate::Like {
            column,
            pattern,
            negated,
        } => format!(
            "{} {}LIKE '{}'",
            column_name(rule, *column),
            not(*negated),
            rule.columns[*column].patterns.patterns()[*pattern]
                .source()
                .replace('\'', "''")
        ),
        Predicate::TextEquals {
            column,
            value,
            negated,
        } => format!(
            "{} {} '{}'",
            column_name(rule, *column),
            if *negated { "<>" } else { "=" },
            value.replace('\'', "''")
        ),
        Predicate::Between {
            value,
            low,
            high,
            negated,
        } => format!(
            "{} {}BETWEEN {low} AND {high}",
            render_number(rule, value),
            not(*negated)
        ),
        Predicate::IsNull { column, negated } => {
            format!("{} IS {}NULL", column_name(rule, *column), not(*negated))
        }
        Predicate::Not(inner) => format!("NOT ({})", render(rule, inner)),
        Predicate::And(parts) | Predicate::Or(parts) => {
            let joiner = if matches!(predicate, Predicate::And(_)) {
                " AND "
            } else {
                " OR "
            };
            let parts: Vec<String> = parts
                .iter()
                .map(|p| format!("({})", render(rule, p)))
                .collect();
            parts.join(joiner)
        }
    }
}

/// What is true of a record that fails `predicate`: `x NOT LIKE 'p'` fails when `x LIKE 'p'`.
fn render_negation(rule: &Rule, predicate: &Predicate) -> String {
    let flipped = match predicate {
        Predicate::Like {
            column,
            pattern,
            negated,
        } => Predicate::Like {
            column: *column,
            pattern: *pattern,
            negated: !negated,
        },
        Predicate::TextEquals {
            column,
            value,
            negated,
        } => Predicate::TextEquals {
            column: *column,
            value: value.clone(),
            negated: !negated,
        },
        Predicate::Between {
            value,
            low,
            high,
            negated,
        } => Predicate::Between {
            value: value.clone(),
            low: *low,
            high: *high,
            negated: !negated,
        },
        Predicate::IsNull { column, negated } => Predicate::IsNull {
            column: *column,
            negated: !negated,
        },
        Predicate::Not(inner) => return render(rule, inner),
        other => return format!("NOT ({})", render(rule, other)),
    };
    render(rule, &flipped)
}
