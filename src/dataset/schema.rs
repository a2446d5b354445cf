//! The SUS tables ebiq expects, written down once: column names as SUS spells them, and types.
//!
//! Tables are registered with every column name in lower case, so SQL that names a column in any
//! case (`Der_Procedure_All`, `der_procedure_all`, `DER_PROCEDURE_ALL`) resolves, as it would on SQL
//! Server with its case-insensitive catalogue; see [`crate::session`].

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// One column of a SUS table.
#[derive(Debug, Clone)]
pub struct SusColumn {
    /// The SUS name, as SUS spells it.
    pub name: &'static str,
    /// The type `generate` writes (files from elsewhere may differ in width, not in [`Kind`]).
    pub data_type: DataType,
    /// What it holds.
    pub meaning: &'static str,
}

const fn column(name: &'static str, data_type: DataType, meaning: &'static str) -> SusColumn {
    SusColumn {
        name,
        data_type,
        meaning,
    }
}

const AGE_AT_START: SusColumn = column(
    "Age_at_Start_of_Episode_SUS",
    DataType::Int32,
    "age in years; 999 unknown, 7001-7007 infants",
);

const AGE_AT_ACTIVITY: SusColumn = column(
    "Der_Age_at_CDS_Activity_Date",
    DataType::Int32,
    "age at the activity date, same coding",
);

/// Not read by the rule; standardised rates use it. Files without it still run.
const SEX: SusColumn = column(
    "Sex",
    DataType::Utf8,
    "1 male, 2 female, 0 not known, 9 not specified",
);

const ADMINISTRATIVE_CATEGORY: SusColumn = column(
    "Administrative_Category",
    DataType::Utf8,
    "01 NHS, 02 private, 03 amenity, 04 category II",
);

/// Outpatient activity (SUS OPA), one row per appointment.
pub const OPA: &[SusColumn] = &[
    column(
        "OPA_Ident",
        DataType::Int64,
        "unique appointment identifier",
    ),
    column(
        "Der_Provider_Code",
        DataType::Utf8,
        "provider organisation code; sometimes with a '00' site suffix (RXH00)",
    ),
    column(
        "Der_Provider_Site_Code",
        DataType::Utf8,
        "provider site code (RXH01)",
    ),
    column("Der_Commissioner_Code", DataType::Utf8, "commissioner code"),
    column(
        "Appointment_Date",
        DataType::Date32,
        "date of the appointment",
    ),
    column(
        "Der_Activity_Month",
        DataType::Utf8,
        "activity month as yyyymm (202404)",
    ),
    AGE_AT_START,
    AGE_AT_ACTIVITY,
    column(
        "Der_Procedure_All",
        DataType::Utf8,
        "OPCS-4 codes, comma-separated, first code first (U051,Z665)",
    ),
    column(
        "Der_Diagnosis_All",
        DataType::Utf8,
        "ICD-10 codes, comma-separated, no dots, padded with X (G35X)",
    ),
    ADMINISTRATIVE_CATEGORY,
    column(
        "Treatment_Function_Code",
        DataType::Utf8,
        "treatment function (110 trauma and orthopaedics, ...)",
    ),
    column(
        "Attendance_Status",
        DataType::Utf8,
        "5/6 attended; 2/3/4/7 did not attend or cancelled",
    ),
    SEX,
];

/// Admitted patient care spells (SUS APCS), one row per spell.
pub const APCS: &[SusColumn] = &[
    column("APCS_Ident", DataType::Int64, "unique spell identifier"),
    column(
        "Der_Provider_Code",
        DataType::Utf8,
        "provider organisation code",
    ),
    column(
        "Der_Provider_Site_Code",
        DataType::Utf8,
        "provider site code",
    ),
    column("Der_Commissioner_Code", DataType::Utf8, "commissioner code"),
    column("Admission_Date", DataType::Date32, "date of admission"),
    column("Discharge_Date", DataType::Date32, "date of discharge"),
    column(
        "Der_Activity_Month",
        DataType::Utf8,
        "activity month as yyyymm",
    ),
    AGE_AT_START,
    AGE_AT_ACTIVITY,
    column(
        "Der_Procedure_All",
        DataType::Utf8,
        "OPCS-4 codes; each episode led by '||', codes comma-separated",
    ),
    column(
        "Der_Diagnosis_All",
        DataType::Utf8,
        "ICD-10 codes as SUS writes them (||E119 ,J849 ||I801)",
    ),
    ADMINISTRATIVE_CATEGORY,
    column(
        "Admission_Method",
        DataType::Utf8,
        "11-13 elective, 21-28 emergency",
    ),
    SEX,
];

/// The Arrow schema of a table of `columns`; only the `*_Ident` keys are not nullable.
pub fn arrow_schema(columns: &[SusColumn]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(c.name, c.data_type.clone(), !c.name.ends_with("_Ident")))
            .collect::<Vec<_>>(),
    ))
}

/// What kind of Arrow type a column may arrive as: files written by other tools differ in width
/// and encoding (Int32 or Int64, Utf8 or Utf8View or dictionary), never in kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Any integer width.
    Integer,
    /// Any string encoding, dictionary included.
    Text,
    /// A date or timestamp.
    Date,
}

impl Kind {
    /// The kind of `data_type`; `None` for one no SUS column can be.
    pub fn of(data_type: &DataType) -> Option<Self> {
        match data_type {
            t if t.is_integer() => Some(Self::Integer),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Some(Self::Text),
            DataType::Dictionary(_, values) => Self::of(values),
            DataType::Date32 | DataType::Date64 | DataType::Timestamp(..) => Some(Self::Date),
            _ => None,
        }
    }

    /// The kind in words, for error messages: "an integer", "text", "a date".
    pub fn describe(self) -> &'static str {
        match self {
            Self::Integer => "an integer",
            Self::Text => "text",
            Self::Date => "a date",
        }
    }
}
