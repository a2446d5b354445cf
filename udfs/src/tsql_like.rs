//! `tsql_like(text, pattern)`: SQL Server's `LIKE`, with its bracket sets and case-insensitive collation.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock, Mutex};

use arrow::array::{Array, ArrayRef, BooleanArray};
use arrow::datatypes::DataType;
use datafusion_common::{Result, ScalarValue, exec_err, plan_err};
use datafusion_expr::scalar_doc_sections::DOC_SECTION_STRING;
use datafusion_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion_expr::{
    ColumnarValue, Documentation, Expr, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use crate::pattern::LikePattern;
use crate::strings::{collect_strings, is_string_type, scalar_str, test_strings};

/// A literal pattern and its escape character, as the cache knows them.
type PatternKey = (String, Option<String>);

/// Compiled literal patterns kept at most; past this the cache starts again.
const CACHED_PATTERNS: usize = 1024;

/// SQL Server `LIKE` as a scalar function. A literal pattern is compiled once and shared by every
/// batch and partition; a pattern column is compiled once per distinct value in each batch.
#[derive(Debug)]
pub struct TsqlLike {
    signature: Signature,
    compiled: Mutex<HashMap<PatternKey, Arc<LikePattern>>>,
}

impl Default for TsqlLike {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
            compiled: Mutex::new(HashMap::new()),
        }
    }
}

impl TsqlLike {
    /// The function, with an empty pattern cache.
    pub fn new() -> Self {
        Self::default()
    }

    fn compile_cached(&self, pattern: &str, escape: Option<&str>) -> Result<Arc<LikePattern>> {
        let mut compiled = self
            .compiled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (pattern.to_owned(), escape.map(str::to_owned));
        if let Some(found) = compiled.get(&key) {
            return Ok(Arc::clone(found));
        }
        let fresh = match LikePattern::compile_with_escape(pattern, escape) {
            Ok(fresh) => Arc::new(fresh),
            Err(error) => return exec_err!("tsql_like: {error}"),
        };
        if compiled.len() >= CACHED_PATTERNS {
            compiled.clear();
        }
        compiled.insert(key, Arc::clone(&fresh));
        Ok(fresh)
    }
}

// Every instance computes the same function; the cache is not part of its identity.
impl PartialEq for TsqlLike {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for TsqlLike {}

impl Hash for TsqlLike {
    fn hash<H: Hasher>(&self, state: &mut H) {
        "tsql_like".hash(state);
    }
}

fn like_array(text: &dyn Array, pattern: &LikePattern) -> Result<ArrayRef> {
    Ok(Arc::new(test_strings(text, None, |s: &str| {
        pattern.matches(s)
    })?))
}

impl ScalarUDFImpl for TsqlLike {
    fn name(&self) -> &str {
        "tsql_like"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if !(2..=3).contains(&arg_types.len()) {
            return plan_err!(
                "tsql_like takes 2 or 3 arguments (text, pattern[, escape]), got {}",
                arg_types.len()
            );
        }
        arg_types
            .iter()
            .zip(["text", "pattern", "escape character"])
            .map(|(data_type, role)| match data_type {
                DataType::Null => Ok(DataType::Utf8),
                t if is_string_type(t) => Ok(t.clone()),
                t => plan_err!("tsql_like: the {role} must be a string, got {t}"),
            })
            .collect()
    }

    /// Checks a literal pattern while the query is planned, so a malformed one fails before any
    /// data is read.
    fn simplify(&self, args: Vec<Expr>, _info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        let escape = match args.get(2) {
            None => None,
            Some(Expr::Literal(escape, _)) => scalar_str(escape)?,
            Some(_) => return plan_err!("tsql_like: the escape character must be a literal"),
        };
        if let Some(Expr::Literal(pattern, _)) = args.get(1)
            && let Ok(Some(pattern)) = scalar_str(pattern)
            && let Err(error) = LikePattern::compile_with_escape(pattern, escape)
        {
            return plan_err!("tsql_like: {error}");
        }
        Ok(ExprSimplifyResult::Original(args))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (text, pattern, escape) = match args.args.as_slice() {
            [text, pattern] => (text, pattern, None),
            [text, pattern, ColumnarValue::Scalar(escape)] => (text, pattern, scalar_str(escape)?),
            [_, _, _] => return exec_err!("tsql_like: the escape character must be a literal"),
            other => return exec_err!("tsql_like takes 2 or 3 arguments, got {}", other.len()),
        };
        match (text, pattern) {
            (_, ColumnarValue::Scalar(pattern)) => {
                let Some(pattern) = scalar_str(pattern)? else {
                    return Ok(ColumnarValue::Scalar(ScalarValue::Boolean(None)));
                };
                let pattern = self.compile_cached(pattern, escape)?;
                match text {
                    ColumnarValue::Array(text) => {
                        Ok(ColumnarValue::Array(like_array(text.as_ref(), &pattern)?))
                    }
                    ColumnarValue::Scalar(text) => Ok(ColumnarValue::Scalar(ScalarValue::Boolean(
                        scalar_str(text)?.map(|t| pattern.matches(t)),
                    ))),
                }
            }
            (text, ColumnarValue::Array(patterns)) => {
                let text = text.to_array(args.number_rows)?;
                let texts = collect_strings(text.as_ref())?;
                let sources = collect_strings(patterns.as_ref())?;
                let mut compiled: HashMap<&str, LikePattern> = HashMap::new();
                let mut values = Vec::with_capacity(texts.len());
                for (text, source) in texts.into_iter().zip(sources) {
                    let (Some(text), Some(source)) = (text, source) else {
                        values.push(None);
                        continue;
                    };
                    if !compiled.contains_key(source) {
                        match LikePattern::compile_with_escape(source, escape) {
                            Ok(pattern) => compiled.insert(source, pattern),
                            Err(error) => return exec_err!("tsql_like: {error}"),
                        };
                    }
                    values.push(compiled.get(source).map(|p| p.matches(text)));
                }
                Ok(ColumnarValue::Array(Arc::new(BooleanArray::from(values))))
            }
        }
    }

    fn documentation(&self) -> Option<&Documentation> {
        static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
            Documentation::builder(
                DOC_SECTION_STRING,
                "SQL Server LIKE under its default collation SQL_Latin1_General_CP1_CI_AS: '%' \
                 matches any run of characters, '_' one character, '[45]' one of a set, '[0-9]' a \
                 range by the collation's sort order (marks, then digits, then letters, accented \
                 letters after their base), '[^x]' anything but x ('[[]' is a literal '['). Letters \
                 compare case-insensitively; the text's trailing blanks are not significant, the \
                 pattern's are. With a third argument, LIKE ... ESCAPE: that one character makes \
                 the next literal. NULL text or pattern gives NULL; a pattern SQL Server cannot \
                 parse (a '[' never closed) matches nothing, as there.",
                "tsql_like(text, pattern[, escape])",
            )
            .with_sql_example(
                "```sql\n> SELECT tsql_like('X621,u054', '%U05[45]%');\n+------+\n| true |\n+------+\n```",
            )
            .with_argument("text", "String expression to test (Utf8, LargeUtf8, Utf8View or dictionary).")
            .with_argument("pattern", "SQL Server LIKE pattern.")
            .with_argument("escape", "Optional: the ESCAPE character, one character (NULL: none).")
            .build()
        });
        Some(&DOCUMENTATION)
    }
}
