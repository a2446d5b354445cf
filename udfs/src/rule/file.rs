//! Reading a rule file (the format: [`parse_rule_file`]).

use std::path::Path;

use sqlparser::dialect::MsSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Location, Token};

use super::convert::Converter;
use super::error::{RuleFileError, split_location};
use super::{ColumnKind, Rule, RuleColumn};
use crate::multi::PatternSet;

const CODE_SCRIPT: &str = "code_script";
const EXCLUSIONS: &str = "exclusions";

struct Section {
    name: String,
    /// 1-based line of the `-- @section` marker.
    marker_line: usize,
    /// 1-based lines of its body, inclusive.
    body: std::ops::RangeInclusive<usize>,
}

/// Parses the rule file `file` (its name gives the rule's name) whose text is `text`.
///
/// A rule file is T-SQL pasted from a published guidance page, under two markers:
///
/// ```text
/// -- @title Low back pain imaging
/// -- @version 2024-25 v1.2
/// -- @effective 2024-04-01
/// -- @section code_script
/// WHEN (opa.Der_Procedure_All like '%U05[45]%' ...) THEN '2S_lower_back_imaging'
/// -- @section exclusions
/// apcs.der_diagnosis_all not like '%C[0-9][0-9]%' and ...
/// ```
///
/// The published pages set some quotes as typographic quotes (`’02’`) and a `--` comment as an em
/// dash (`— Private Appointment Exclusion`); both are read as the SQL they stand for, so the text can
/// be pasted unchanged. `@version` and `@effective` (both optional, free text) say which
/// publication of the rule the file holds; they are shown with the rule's functions and recorded in
/// every report's manifest and page. Errors name the file, line and column and say what was expected.
pub fn parse_rule_file(file: &str, text: &str) -> Result<Rule, RuleFileError> {
    let error = |line: usize, message: String| RuleFileError {
        file: file.to_owned(),
        line,
        column: None,
        message,
    };
    let name = rule_name(file).ok_or_else(|| {
        error(
            1,
            "the file name must be a rule name of letters, digits and '_', ending in .sql".into(),
        )
    })?;
    let lines: Vec<String> = text.lines().map(as_plain_sql).collect();
    let (headers, sections) =
        read_markers(&lines).map_err(|(line, message)| error(line, message))?;

    let script = sections
        .iter()
        .find(|s| s.name == CODE_SCRIPT)
        .ok_or_else(|| error(1, format!("expected a '-- @section {CODE_SCRIPT}' line")))?;
    let (condition, flag) = parse_section(file, &lines, script, |parser| {
        parser.expect_keyword_is(Keyword::WHEN)?;
        let condition = parser.parse_expr()?;
        parser.expect_keyword_is(Keyword::THEN)?;
        Ok((condition, parser.parse_expr()?))
    })?;
    let exclusion_expr = sections
        .iter()
        .find(|s| s.name == EXCLUSIONS)
        .map(|section| parse_section(file, &lines, section, |parser| parser.parse_expr()))
        .transpose()?;

    let mut converter = Converter::new(file);
    let (inclusion, flag) = converter.code_script(&condition, &flag)?;
    let exclusion = exclusion_expr
        .map(|expr| converter.predicate(&expr))
        .transpose()?;
    let columns = converter
        .into_columns()
        .into_iter()
        .map(|column| {
            let patterns = PatternSet::new(column.patterns).ok_or_else(|| {
                error(
                    script.marker_line,
                    format!(
                        "more than {} LIKE patterns on column {}",
                        crate::multi::MAX_PATTERNS,
                        column.name
                    ),
                )
            })?;
            Ok(RuleColumn {
                name: column.name,
                qualifiers: column.qualifiers,
                kind: column.kind.unwrap_or(ColumnKind::Text),
                patterns,
            })
        })
        .collect::<Result<_, RuleFileError>>()?;
    Ok(Rule {
        name,
        title: headers.title,
        version: headers.version,
        effective: headers.effective,
        file: file.to_owned(),
        source: text.to_owned(),
        flag,
        columns,
        inclusion,
        exclusion,
    })
}

fn rule_name(file: &str) -> Option<String> {
    let path = Path::new(file);
    if path.extension()?.to_str()? != "sql" {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    let valid = !stem.is_empty()
        && stem.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && stem.starts_with(|c: char| c.is_ascii_alphabetic());
    valid.then(|| stem.to_ascii_lowercase())
}

/// Reads a published line as the SQL it stands for: typographic quotes as straight quotes, and a
/// line led by an em or en dash as a `--` comment. Characters are replaced one for one, so columns
/// in error messages still point into the file as written.
fn as_plain_sql(line: &str) -> String {
    let plain: String = line
        .chars()
        .map(|c| match c {
            '\u{2018}' | '\u{2019}' => '\'',
            '\u{201C}' | '\u{201D}' => '"',
            other => other,
        })
        .collect();
    let trimmed = plain.trim_start();
    if trimmed.starts_with(['\u{2014}', '\u{2013}']) {
        format!(
            "--{}",
            &trimmed[trimmed.chars().next().map_or(0, char::len_utf8)..]
        )
    } else {
        plain
    }
}

type MarkerError = (usize, String);

/// A rule file's `-- @title`, `-- @version` and `-- @effective` lines.
#[derive(Debug, Default)]
struct Headers {
    title: Option<String>,
    version: Option<String>,
    effective: Option<String>,
}

fn read_markers(lines: &[String]) -> Result<(Headers, Vec<Section>), MarkerError> {
    let mut headers = Headers::default();
    let mut sections: Vec<Section> = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let number = index + 1;
        let Some(directive) = line.trim().strip_prefix("--").map(str::trim) else {
            if sections.is_empty() && !line.trim().is_empty() {
                return Err((
                    number,
                    format!("expected '-- @section {CODE_SCRIPT}' before the SQL"),
                ));
            }
            if let Some(section) = sections.last_mut() {
                section.body = *section.body.start()..=number;
            }
            continue;
        };
        let Some(directive) = directive.strip_prefix('@') else {
            continue; // an ordinary comment
        };
        let (keyword, argument) = directive.split_once(' ').unwrap_or((directive, ""));
        let argument = argument.trim();
        match keyword {
            "title" => headers.title = Some(argument.to_owned()),
            "version" => headers.version = Some(argument.to_owned()),
            "effective" => headers.effective = Some(argument.to_owned()),
            "section" if [CODE_SCRIPT, EXCLUSIONS].contains(&argument) => {
                if sections.iter().any(|s| s.name == argument) {
                    return Err((number, format!("a second '@section {argument}'")));
                }
                sections.push(Section {
                    name: argument.to_owned(),
                    marker_line: number,
                    body: number + 1..=number,
                });
            }
            "section" => {
                return Err((
                    number,
                    format!(
                        "unknown section '{argument}': expected '{CODE_SCRIPT}' or '{EXCLUSIONS}'"
                    ),
                ));
            }
            other => {
                return Err((
                    number,
                    format!(
                        "unknown directive '@{other}': expected '@title', '@version', \
                         '@effective' or '@section'"
                    ),
                ));
            }
        }
    }
    Ok((headers, sections))
}

/// Parses one section with `read`, keeping every line where it is in the file (other lines blank)
/// so the parser's positions are the file's, and requiring that `read` consumes the whole section.
fn parse_section<T>(
    file: &str,
    lines: &[String],
    section: &Section,
    read: impl Fn(&mut Parser<'_>) -> Result<T, ParserError>,
) -> Result<T, RuleFileError> {
    let mut sql = String::new();
    for (index, line) in lines.iter().enumerate() {
        if section.body.contains(&(index + 1)) {
            sql.push_str(line);
        }
        sql.push('\n');
    }
    let last_body_line = *section.body.end();
    let located = |message: String, line: usize, column: usize| {
        let (line, column, message) = if line > last_body_line {
            let message = format!("{message} (at the end of section '{}')", section.name);
            (last_body_line.max(section.marker_line), None, message)
        } else {
            (line, Some(column), message)
        };
        RuleFileError {
            file: file.to_owned(),
            line,
            column,
            message,
        }
    };
    let dialect = MsSqlDialect {};
    let parse = || -> Result<(T, Token, Location), ParserError> {
        let mut parser = Parser::new(&dialect).try_with_sql(&sql)?;
        let parsed = read(&mut parser)?;
        let next = parser.peek_token();
        Ok((parsed, next.token, next.span.start))
    };
    match parse() {
        Ok((parsed, Token::EOF, _)) => Ok(parsed),
        Ok((_, token, at)) => Err(located(
            format!("expected the end of the expression, found '{token}'"),
            at.line as usize,
            at.column as usize,
        )),
        Err(error) => {
            let text = error.to_string();
            let text = text.strip_prefix("sql parser error: ").unwrap_or(&text);
            match split_location(text) {
                Some((message, line, column)) => Err(located(message.to_owned(), line, column)),
                // Only an error at the end of the input comes without a position.
                None => Err(located(text.to_owned(), usize::MAX, 1)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typographic_quotes_and_dash_comments_read_as_sql() {
        assert_eq!(as_plain_sql("x <>’02’"), "x <>'02'");
        assert_eq!(
            as_plain_sql("— Private Appointment Exclusion"),
            "-- Private Appointment Exclusion"
        );
        assert_eq!(as_plain_sql("a – b"), "a – b");
    }

    #[test]
    fn rule_names_come_from_file_names() {
        assert_eq!(
            rule_name("rules/lower_back_imaging.sql").as_deref(),
            Some("lower_back_imaging")
        );
        assert_eq!(
            rule_name("rules/Lower_Back.sql").as_deref(),
            Some("lower_back")
        );
        assert_eq!(rule_name("rules/lower-back.sql"), None);
        assert_eq!(rule_name("rules/1back.sql"), None);
        assert_eq!(rule_name("rules/back.txt"), None);
    }
}
