//! The "Low back pain imaging" rule, clause by clause and boundary by boundary, in both NULL modes
//! and over every string encoding.

mod common;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array};
use arrow::compute::kernels::boolean::and_kleene;
use common::{STRING_TYPES, invoke, strings};
use ebiq_udfs::{NullMode, RuleFunction, builtin_rules, rule_functions};

const FLAG: &str = "2S_lower_back_imaging";

/// One activity record and whether the rule flags it: (intended mode, strict_tsql mode).
struct Case {
    why: &'static str,
    procedures: Option<&'static str>,
    age_at_start: Option<i64>,
    age_at_activity: Option<i64>,
    diagnoses: Option<&'static str>,
    admin_category: Option<&'static str>,
    flagged: (bool, bool),
}

const fn case(
    why: &'static str,
    procedures: Option<&'static str>,
    ages: (Option<i64>, Option<i64>),
    diagnoses: Option<&'static str>,
    admin_category: Option<&'static str>,
    flagged: (bool, bool),
) -> Case {
    Case {
        why,
        procedures,
        age_at_start: ages.0,
        age_at_activity: ages.1,
        diagnoses,
        admin_category,
        flagged,
    }
}

const ADULT: (Option<i64>, Option<i64>) = (Some(45), None);
const BOTH: (bool, bool) = (true, true);
const NEITHER: (bool, bool) = (false, false);
const INTENDED_ONLY: (bool, bool) = (true, false);
const OK_DX: Option<&str> = Some("M545");
const NHS: Option<&str> = Some("01");

const CASES: &[Case] = &[
    // The U05[45] branch.
    case("CT of spine", Some("U054"), ADULT, OK_DX, NHS, BOTH),
    case("MRI of spine", Some("U055"), ADULT, OK_DX, NHS, BOTH),
    case(
        "U056 is not spine imaging",
        Some("U056"),
        ADULT,
        OK_DX,
        NHS,
        NEITHER,
    ),
    case("U05 alone", Some("U05"), ADULT, OK_DX, NHS, NEITHER),
    case("lowercase code", Some("u054"), ADULT, OK_DX, NHS, BOTH),
    case(
        "code first in the list",
        Some("U054,X621,Y981"),
        ADULT,
        OK_DX,
        NHS,
        BOTH,
    ),
    case(
        "code in the middle",
        Some("X621,U055,Y981"),
        ADULT,
        OK_DX,
        NHS,
        BOTH,
    ),
    case(
        "code last in the list",
        Some("X621,Y981,U054"),
        ADULT,
        OK_DX,
        NHS,
        BOTH,
    ),
    case(
        "substring of a longer code",
        Some("U0545"),
        ADULT,
        OK_DX,
        NHS,
        BOTH,
    ),
    case("empty procedure list", Some(""), ADULT, OK_DX, NHS, NEITHER),
    case("NULL procedure list", None, ADULT, OK_DX, NHS, NEITHER),
    // The (U13[2356] or U21[1267]) and (Z665 or O162) branch.
    case(
        "bone ultrasound of lumbar vertebra",
        Some("U132,Z665"),
        ADULT,
        OK_DX,
        NHS,
        BOTH,
    ),
    case(
        "site code first",
        Some("Z665,U133"),
        ADULT,
        OK_DX,
        NHS,
        BOTH,
    ),
    case(
        "bone x-ray of spine NEC",
        Some("U135,O162"),
        ADULT,
        OK_DX,
        NHS,
        BOTH,
    ),
    case(
        "bone CT, site code later",
        Some("U136,X621,Z665"),
        ADULT,
        OK_DX,
        NHS,
        BOTH,
    ),
    case(
        "MRI NEC of spine",
        Some("U211,O162"),
        ADULT,
        OK_DX,
        NHS,
        BOTH,
    ),
    case(
        "CT NEC of spine",
        Some("u212,o162"),
        ADULT,
        OK_DX,
        NHS,
        BOTH,
    ),
    case("ultrasound NEC", Some("U216,Z665"), ADULT, OK_DX, NHS, BOTH),
    case("x-ray NEC", Some("U217,Z665"), ADULT, OK_DX, NHS, BOTH),
    case(
        "Z6651 contains Z665",
        Some("U217,Z6651"),
        ADULT,
        OK_DX,
        NHS,
        BOTH,
    ),
    case(
        "imaging without a site",
        Some("U132"),
        ADULT,
        OK_DX,
        NHS,
        NEITHER,
    ),
    case(
        "site without imaging",
        Some("Z665,O162"),
        ADULT,
        OK_DX,
        NHS,
        NEITHER,
    ),
    case(
        "U134 is not in the set",
        Some("U134,Z665"),
        ADULT,
        OK_DX,
        NHS,
        NEITHER,
    ),
    case(
        "U213 is not in the set",
        Some("U213,O162"),
        ADULT,
        OK_DX,
        NHS,
        NEITHER,
    ),
    case(
        "O161 is not the spine",
        Some("U211,O161"),
        ADULT,
        OK_DX,
        NHS,
        NEITHER,
    ),
    // Age: ISNULL(Age_at_Start_of_Episode_SUS, Der_Age_at_CDS_Activity_Date) BETWEEN 19 AND 120.
    case(
        "age 18",
        Some("U054"),
        (Some(18), None),
        OK_DX,
        NHS,
        NEITHER,
    ),
    case("age 19", Some("U054"), (Some(19), None), OK_DX, NHS, BOTH),
    case("age 120", Some("U054"), (Some(120), None), OK_DX, NHS, BOTH),
    case(
        "age 121",
        Some("U054"),
        (Some(121), None),
        OK_DX,
        NHS,
        NEITHER,
    ),
    case(
        "age unknown (999)",
        Some("U054"),
        (Some(999), None),
        OK_DX,
        NHS,
        NEITHER,
    ),
    case(
        "infant age code",
        Some("U054"),
        (Some(7001), None),
        OK_DX,
        NHS,
        NEITHER,
    ),
    case(
        "second age used",
        Some("U054"),
        (None, Some(30)),
        OK_DX,
        NHS,
        BOTH,
    ),
    case(
        "second age 18",
        Some("U054"),
        (None, Some(18)),
        OK_DX,
        NHS,
        NEITHER,
    ),
    case(
        "first age wins",
        Some("U054"),
        (Some(17), Some(30)),
        OK_DX,
        NHS,
        NEITHER,
    ),
    case(
        "first age wins (adult)",
        Some("U054"),
        (Some(30), Some(17)),
        OK_DX,
        NHS,
        BOTH,
    ),
    case(
        "both ages NULL",
        Some("U054"),
        (None, None),
        OK_DX,
        NHS,
        NEITHER,
    ),
    // Cancer diagnoses: C00-C99, D00-D09, D37-D48.
    case(
        "C50 breast cancer",
        Some("U054"),
        ADULT,
        Some("C509"),
        NHS,
        NEITHER,
    ),
    case(
        "cancer later in list",
        Some("U054"),
        ADULT,
        Some("M545,C61X"),
        NHS,
        NEITHER,
    ),
    case(
        "lowercase cancer code",
        Some("U054"),
        ADULT,
        Some("c509"),
        NHS,
        NEITHER,
    ),
    case(
        "D05 in situ",
        Some("U054"),
        ADULT,
        Some("D05"),
        NHS,
        NEITHER,
    ),
    case(
        "D37 uncertain",
        Some("U054"),
        ADULT,
        Some("D37X"),
        NHS,
        NEITHER,
    ),
    case(
        "D48 uncertain",
        Some("U054"),
        ADULT,
        Some("D480"),
        NHS,
        NEITHER,
    ),
    case("D36 is benign", Some("U054"), ADULT, Some("D36"), NHS, BOTH),
    case(
        "D49 is outside",
        Some("U054"),
        ADULT,
        Some("D49"),
        NHS,
        BOTH,
    ),
    case(
        "C with one digit",
        Some("U054"),
        ADULT,
        Some("C5X"),
        NHS,
        BOTH,
    ),
    case("empty diagnoses", Some("U054"), ADULT, Some(""), NHS, BOTH),
    case(
        "NULL diagnoses",
        Some("U054"),
        ADULT,
        None,
        NHS,
        INTENDED_ONLY,
    ),
    case(
        "APCS-style list",
        Some("U054"),
        ADULT,
        Some("||M545 ,K869 ||C509"),
        NHS,
        NEITHER,
    ),
    // Private appointments: Administrative_Category <> '02'.
    case("private", Some("U054"), ADULT, OK_DX, Some("02"), NEITHER),
    case(
        "private, trailing blank",
        Some("U054"),
        ADULT,
        OK_DX,
        Some("02 "),
        NEITHER,
    ),
    case("amenity", Some("U054"), ADULT, OK_DX, Some("03"), BOTH),
    case("empty category", Some("U054"), ADULT, OK_DX, Some(""), BOTH),
    case(
        "NULL category",
        Some("U054"),
        ADULT,
        OK_DX,
        None,
        INTENDED_ONLY,
    ),
    case("NULL everywhere", None, (None, None), None, None, NEITHER),
    case(
        "NULL exclusions, cancer",
        Some("U054"),
        ADULT,
        Some("C509"),
        None,
        NEITHER,
    ),
];

fn function(name: &str) -> RuleFunction {
    let rules = builtin_rules().expect("the built-in rules load");
    let rule = rules
        .iter()
        .find(|r| r.name == "lower_back_imaging")
        .expect("built-in rule");
    rule_functions(Arc::clone(rule))
        .into_iter()
        .find(|f| datafusion_expr::ScalarUDFImpl::name(f) == name)
        .unwrap_or_else(|| panic!("no function {name}"))
}

fn column(encoding: &str, pick: impl Fn(&Case) -> Option<&'static str>) -> ArrayRef {
    strings(encoding, &CASES.iter().map(pick).collect::<Vec<_>>())
}

fn ages(pick: impl Fn(&Case) -> Option<i64>) -> ArrayRef {
    Arc::new(CASES.iter().map(pick).collect::<Int64Array>())
}

fn all_columns(encoding: &str) -> Vec<ArrayRef> {
    vec![
        column(encoding, |c| c.procedures),
        ages(|c| c.age_at_start),
        ages(|c| c.age_at_activity),
        column(encoding, |c| c.diagnoses),
        column(encoding, |c| c.admin_category),
    ]
}

#[test]
fn takes_its_columns_in_the_order_the_rule_names_them() {
    let flag = function("ebi_lower_back_imaging");
    let in_order = [
        "Der_Procedure_All",
        "Age_at_Start_of_Episode_SUS",
        "Der_Age_at_CDS_Activity_Date",
        "der_diagnosis_all",
        "Administrative_Category",
    ];
    assert_eq!(flag.argument_columns(), in_order);
    // What `ebiq explain` passes to `ebi_<rule>_explain`, which takes the flag's arguments.
    assert_eq!(flag.rule().flag_arguments(), in_order);
}

#[test]
fn flags_exactly_the_published_rule_in_both_modes() {
    let rule = function("ebi_lower_back_imaging");
    for encoding in STRING_TYPES {
        for (mode, pick) in [
            (
                NullMode::Intended,
                (|c: &Case| c.flagged.0) as fn(&Case) -> bool,
            ),
            (NullMode::StrictTsql, |c: &Case| c.flagged.1),
        ] {
            let result = invoke(&rule, all_columns(encoding), mode);
            let result = result.as_string::<i32>();
            for (row, case) in CASES.iter().enumerate() {
                let expected = pick(case).then_some(FLAG);
                let actual = result.is_valid(row).then(|| result.value(row));
                assert_eq!(actual, expected, "{} ({encoding}, {mode})", case.why);
            }
        }
    }
}

/// What lets the one scan compute the flag only where its inclusion test holds: on every case,
/// in both modes, the flag is set only where each test of its inclusion is TRUE, and
/// `flag_implies` pairs each test's arguments with the flag's. Other pairs are not implied.
#[test]
fn the_flag_is_set_only_where_its_inclusion_tests_hold() {
    let flag = function("ebi_lower_back_imaging");
    for name in [
        "ebi_lower_back_imaging_included",
        "ebi_lower_back_imaging_included_by_der_procedure_all",
    ] {
        let test = function(name);
        let positions = flag.flag_implies(&test).expect("implied");
        assert_eq!(positions.len(), test.argument_columns().len(), "{name}");
        let carried: Vec<&str> = positions
            .iter()
            .map(|&at| flag.argument_columns()[at])
            .collect();
        assert_eq!(carried, test.argument_columns(), "{name}");
        for encoding in STRING_TYPES {
            for mode in [NullMode::Intended, NullMode::StrictTsql] {
                let all = all_columns(encoding);
                let flags = invoke(&flag, all.clone(), mode);
                // The flag's arguments are in `all_columns`' order.
                let arguments = positions.iter().map(|&at| Arc::clone(&all[at])).collect();
                let tests = invoke(&test, arguments, mode);
                let tests = tests.as_boolean();
                for (row, case) in CASES.iter().enumerate() {
                    if flags.is_valid(row) {
                        assert!(
                            tests.is_valid(row) && tests.value(row),
                            "{name}: {} ({encoding}, {mode})",
                            case.why
                        );
                    }
                }
            }
        }
    }
    let excluded = function("ebi_lower_back_imaging_excluded");
    let included = function("ebi_lower_back_imaging_included");
    assert_eq!(flag.flag_implies(&excluded), None);
    assert_eq!(included.flag_implies(&flag), None);
    assert_eq!(flag.flag_implies(&flag), None);
}

/// Rows picked by their position, named.
type Selection = (&'static str, fn(usize) -> Option<bool>);

/// `<flag>_where(rows, columns...)`, given rows where a test the flag implies holds, is `CASE WHEN
/// rows THEN flag END`: the flag there, NULL where `rows` is FALSE or NULL, for each test and
/// selections of every shape within it.
#[test]
fn the_flag_on_given_rows_is_the_flag_there_and_null_elsewhere() {
    let flag = function("ebi_lower_back_imaging");
    let excluded = function("ebi_lower_back_imaging_excluded");
    assert!(
        flag.flag_where(&excluded).is_none(),
        "not a test of its inclusion"
    );
    for name in [
        "ebi_lower_back_imaging_included",
        "ebi_lower_back_imaging_included_by_der_procedure_all",
    ] {
        let test = function(name);
        let flag_where = flag.flag_where(&test).expect("a flag has a guarded form");
        assert_eq!(
            datafusion_expr::ScalarUDFImpl::name(&flag_where),
            "ebi_lower_back_imaging_where"
        );
        assert!(flag_where.flag_where(&test).is_none(), "guarded once");
        let positions = flag.flag_implies(&test).expect("implied");
        for encoding in STRING_TYPES {
            for mode in [NullMode::Intended, NullMode::StrictTsql] {
                let all = all_columns(encoding);
                let flags = invoke(&flag, all.clone(), mode);
                let flags = flags.as_string::<i32>();
                let arguments = positions.iter().map(|&at| Arc::clone(&all[at])).collect();
                let tests = invoke(&test, arguments, mode);
                let tests = tests.as_boolean();
                let within: [Selection; 4] = [
                    ("every row", |_| Some(true)),
                    ("no row", |_| Some(false)),
                    ("NULL", |_| None),
                    ("every third TRUE, every third NULL", |row| {
                        [Some(true), Some(false), None][row % 3]
                    }),
                ];
                for (what, pick) in within {
                    let picked: BooleanArray = (0..CASES.len()).map(pick).collect();
                    let rows = and_kleene(tests, &picked).expect("same length");
                    let mut arguments: Vec<ArrayRef> = vec![Arc::new(rows.clone())];
                    arguments.extend(all.iter().cloned());
                    let got = invoke(&flag_where, arguments, mode);
                    let got = got.as_string::<i32>();
                    for (row, case) in CASES.iter().enumerate() {
                        let kept = rows.is_valid(row) && rows.value(row);
                        let expected = (kept && flags.is_valid(row)).then(|| flags.value(row));
                        let actual = got.is_valid(row).then(|| got.value(row));
                        assert_eq!(
                            actual, expected,
                            "{name}, {what}: {} ({encoding}, {mode})",
                            case.why
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn inclusion_by_procedures_is_the_like_clause_alone() {
    let included = function("ebi_lower_back_imaging_included_by_der_procedure_all");
    assert_eq!(included.argument_columns(), ["Der_Procedure_All"]);
    let procedures = [
        Some("U054"),
        Some("x621,u055"),
        Some("U132,Z665"),
        Some("U132"),
        Some(""),
        None,
    ];
    let expected = [
        Some(true),
        Some(true),
        Some(true),
        Some(false),
        Some(false),
        None,
    ];
    for encoding in STRING_TYPES {
        let result = invoke(
            &included,
            vec![strings(encoding, &procedures)],
            NullMode::Intended,
        );
        let result: Vec<_> = result.as_boolean().iter().collect();
        assert_eq!(result, expected, "{encoding}");
    }
}

#[test]
fn cancer_exclusion_reads_nulls_by_mode() {
    let excluded = function("ebi_lower_back_imaging_excluded_by_der_diagnosis_all");
    assert_eq!(excluded.argument_columns(), ["der_diagnosis_all"]);
    let diagnoses = [
        Some("C509"),
        Some("D05"),
        Some("D44"),
        Some("D49"),
        Some(""),
        None,
    ];
    for encoding in STRING_TYPES {
        let column = strings(encoding, &diagnoses);
        let intended = invoke(&excluded, vec![Arc::clone(&column)], NullMode::Intended);
        let intended: Vec<_> = intended.as_boolean().iter().collect();
        let some = |v: bool| Some(v);
        assert_eq!(
            intended,
            [true, true, true, false, false, false].map(some),
            "{encoding}"
        );
        let strict = invoke(&excluded, vec![column], NullMode::StrictTsql);
        let strict: Vec<_> = strict.as_boolean().iter().collect();
        assert_eq!(
            strict,
            [
                Some(true),
                Some(true),
                Some(true),
                Some(false),
                Some(false),
                None
            ],
            "{encoding}"
        );
    }
}

#[test]
fn private_appointment_exclusion_and_whole_sections() {
    let private = function("ebi_lower_back_imaging_excluded_by_administrative_category");
    let categories = [Some("02"), Some("01"), Some("02  "), None];
    let result = invoke(
        &private,
        vec![strings("Utf8View", &categories)],
        NullMode::Intended,
    );
    let result: Vec<_> = result.as_boolean().iter().collect();
    assert_eq!(result, [Some(true), Some(false), Some(true), Some(false)]);

    let included = function("ebi_lower_back_imaging_included");
    assert_eq!(included.argument_columns().len(), 3);
    let excluded = function("ebi_lower_back_imaging_excluded");
    assert_eq!(
        excluded.argument_columns(),
        ["der_diagnosis_all", "Administrative_Category"]
    );
    let columns = all_columns("Utf8");
    let included = invoke(&included, columns[..3].to_vec(), NullMode::Intended);
    let excluded = invoke(&excluded, columns[3..].to_vec(), NullMode::Intended);
    let (included, excluded) = (included.as_boolean(), excluded.as_boolean());
    for (row, case) in CASES.iter().enumerate() {
        let flagged = included.is_valid(row) && included.value(row) && !excluded.value(row);
        assert_eq!(
            flagged, case.flagged.0,
            "{}: included and not excluded",
            case.why
        );
    }
}
