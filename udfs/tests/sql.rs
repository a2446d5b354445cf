//! The functions as an analyst meets them: registered in a DataFusion session and called from SQL.

use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::error::Result;
use datafusion::prelude::{SessionConfig, SessionContext};
use ebiq_udfs::{EbiqOptions, register_all};

fn session() -> SessionContext {
    let config = SessionConfig::new().with_option_extension(EbiqOptions::default());
    let mut ctx = SessionContext::new_with_config(config);
    register_all(&mut ctx).expect("the functions register");
    ctx
}

async fn query(ctx: &SessionContext, sql: &str) -> Result<String> {
    let batches = ctx.sql(sql).await?.collect().await?;
    Ok(pretty_format_batches(&batches)?.to_string())
}

const RECORDS: &str = "CREATE TABLE opa AS VALUES \
    ('U054', 45, NULL, 'M545', '01'), \
    ('U132,Z665', NULL, 30, NULL, '01'), \
    ('U054', 45, NULL, 'C509', '01'), \
    ('U055', 17, NULL, 'M545', NULL), \
    ('X621', 50, NULL, 'M545', '02')";

const FLAGGED: &str = "SELECT count(*) AS n FROM opa \
    WHERE ebi_lower_back_imaging(column1, column2, column3, column4, column5) IS NOT NULL";

#[tokio::test]
async fn the_rule_is_callable_from_sql_and_the_mode_is_a_session_setting() {
    let ctx = session();
    ctx.sql(RECORDS)
        .await
        .expect("the future succeeds")
        .collect()
        .await
        .expect("the future succeeds");
    let intended = query(&ctx, FLAGGED).await.expect("the future succeeds");
    assert!(intended.contains("| 2 |"), "{intended}");
    ctx.sql("SET ebiq.null_mode = 'strict_tsql'")
        .await
        .expect("the future succeeds");
    let strict = query(&ctx, FLAGGED).await.expect("the future succeeds");
    assert!(strict.contains("| 1 |"), "{strict}");
}

#[tokio::test]
async fn an_unknown_mode_is_refused() {
    let ctx = session();
    let error = ctx
        .sql("SET ebiq.null_mode = 'lenient'")
        .await
        .expect_err("refused");
    assert!(error.to_string().contains("lenient"), "{error}");
}

#[tokio::test]
async fn tsql_like_in_sql() {
    let ctx = session();
    let result = query(
        &ctx,
        "SELECT tsql_like('X621,u054', '%U05[45]%') AS a, tsql_like('U056', '%U05[45]%') AS b, \
         tsql_like(NULL, '%') AS c, tsql_like(arrow_cast('U054', 'Utf8View'), 'U05_') AS d",
    )
    .await
    .expect("the future succeeds");
    assert!(result.contains("| true | false |   | true |"), "{result}");
}

#[tokio::test]
async fn an_invalid_escape_fails_at_planning_naming_the_pattern() {
    let ctx = session();
    // No table is read: the error comes from planning, before any data.
    let plan = ctx
        .sql("SELECT tsql_like(column1, '%U05[45%', 'ab') FROM (VALUES ('a'))")
        .await;
    let error = match plan {
        Err(error) => error,
        Ok(frame) => frame.into_optimized_plan().expect_err("refused"),
    };
    assert!(
        error.to_string().contains(
            "invalid LIKE pattern '%U05[45%': the escape character 'ab' is not one character"
        ),
        "{error}"
    );
}

#[tokio::test]
async fn wrong_argument_types_are_planning_errors_naming_the_column() {
    let ctx = session();
    let error = ctx
        .sql("SELECT ebi_lower_back_imaging_excluded_by_administrative_category(2)")
        .await
        .expect_err("refused");
    assert!(
        error
            .to_string()
            .contains("argument 1 (Administrative_Category) must be a string"),
        "{error}"
    );
}

#[test]
fn every_function_is_documented() {
    let ctx = session();
    let state = ctx.state();
    let names: Vec<_> = state
        .scalar_functions()
        .keys()
        .filter(|name| name.starts_with("ebi_") || *name == "tsql_like")
        .cloned()
        .collect();
    assert!(names.len() >= 7, "{names:?}");
    for name in names {
        let function = &state.scalar_functions()[&name];
        let docs = function
            .documentation()
            .unwrap_or_else(|| panic!("{name} has no documentation"));
        assert!(!docs.description.is_empty(), "{name}");
        assert!(
            docs.syntax_example.starts_with(&name),
            "{name}: {}",
            docs.syntax_example
        );
    }
}

#[test]
fn registering_never_silently_replaces_a_function() {
    let mut ctx = session();
    let error = register_all(&mut ctx).expect_err("refused").to_string();
    assert!(error.contains("already has a function"), "{error}");
    assert!(error.contains("tsql_like"), "{error}");
}

/// The README's worked example of an admitted-care rule (docs/rules/): spell-level columns under
/// other qualifiers (`Der.`, `APCS.`), and an exclusion that lets a spell with no diagnoses through
/// in either NULL mode, as the programme's `or apcs.der_diagnosis_all IS NULL` intends.
#[tokio::test]
async fn the_worked_admitted_care_example_flags_what_it_says() {
    let folder = tempfile::tempdir().expect("a temporary folder");
    let dir = folder.path();
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/rules/knee_arthroscopy_example.sql"
    );
    std::fs::copy(example, dir.join("knee_arthroscopy.sql")).expect("a copyable file");
    let rules = ebiq_udfs::load_rules(dir).expect("the rule files load");
    assert_eq!(
        rules[0].edition(),
        "version example 1, effective 2025-04-01"
    );
    let config = SessionConfig::new().with_option_extension(EbiqOptions::default());
    let mut ctx = SessionContext::new_with_config(config);
    ebiq_udfs::register_rules(&mut ctx, &rules).expect("the rules register");
    ctx.sql(
        "CREATE TABLE apcs (spell_dominant_procedure TEXT, admission_method TEXT, \
         age_at_start_of_spell_sus INT, der_age_at_cds_activity_date INT, der_diagnosis_all TEXT) \
         AS VALUES \
         ('W851', '11', 45, NULL, 'M171'), \
         ('W851', '21', 45, NULL, 'M171'), \
         ('W852', '12', NULL, 50, NULL), \
         ('W851', '11', 45, NULL, 'M171,S832'), \
         ('X851', '11', 45, NULL, 'M171'), \
         ('w853', '13', 17, NULL, 'M171')",
    )
    .await
    .expect("the future succeeds")
    .collect()
    .await
    .expect("the future succeeds");
    let flagged = "SELECT count(*) AS n FROM apcs WHERE ebi_knee_arthroscopy(spell_dominant_procedure, \
                   admission_method, age_at_start_of_spell_sus, der_age_at_cds_activity_date, \
                   der_diagnosis_all) = '1K_knee_arthroscopy'";
    // Elective (1x) W85 adults with no knee injury: the first and the third (no diagnoses).
    for mode in ["intended", "strict_tsql"] {
        ctx.sql(&format!("SET ebiq.null_mode = '{mode}'"))
            .await
            .expect("the future succeeds");
        let result = query(&ctx, flagged).await.expect("the future succeeds");
        assert!(result.contains("| 2 |"), "{mode}: {result}");
    }
}
