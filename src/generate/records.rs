//! One synthetic activity record at a time, shaped like SUS data.

use rand::Rng;

use super::codes::{
    BONE_AND_NEC_IMAGING, CANCER_DIAGNOSES, COMMON_DIAGNOSES, COMMON_PROCEDURES, OTHER_SITES,
    SPINE_SITES, Weighted, random_procedure,
};

/// How a table writes its code lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStyle {
    /// OPA: `U051,Z665`, first code first.
    Comma,
    /// APCS: each episode's group led by `||`, codes comma-separated with stray blanks
    /// (`||E119 ,J849 ,K869 ||I801 ,I802`).
    Episodes,
}

const PROVIDERS: usize = 200;
const COMMISSIONERS: usize = 42;
/// The share of a provider's activity its own commissioner pays for; the rest is spread evenly.
const OWN_COMMISSIONER: f64 = 0.85;
const OTHER_COMMISSIONER: f64 = 1.0 - OWN_COMMISSIONER;

/// Who provides and commissions activity, and how often, fixed for every seed.
#[derive(Debug)]
pub struct Population {
    providers: Weighted<usize>,
    provider_weights: Vec<f64>,
    provider_codes: Vec<String>,
    commissioner_codes: Vec<String>,
    procedures: Weighted<&'static str>,
    diagnoses: Weighted<&'static str>,
    cancers: Weighted<&'static str>,
    treatment_functions: Weighted<&'static str>,
    attendance: Weighted<&'static str>,
    admin_categories: Weighted<Option<&'static str>>,
}

fn base36(mut n: usize, width: usize) -> String {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[n % 36];
        n /= 36;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Default for Population {
    fn default() -> Self {
        // Zipf-like volumes: a few very large trusts, a long tail of small providers.
        let weights: Vec<(usize, u32)> = (0..PROVIDERS)
            .map(|rank| (rank, (100_000.0 / (rank as f64 + 1.0).powf(0.9)) as u32 + 1))
            .collect();
        let provider_codes = (0..PROVIDERS)
            .map(|i| match i % 20 {
                19 => format!("N{}", base36(i * 7 + 400, 2)),
                _ => format!("R{}", base36(i * 5 + 370, 2)),
            })
            .collect();
        let commissioner_codes = (0..COMMISSIONERS)
            .map(|i| format!("Q{}", base36(i * 11 + 400, 2)))
            .collect();
        Self {
            provider_weights: weights.iter().map(|&(_, w)| f64::from(w)).collect(),
            providers: Weighted::new(&weights),
            provider_codes,
            commissioner_codes,
            procedures: Weighted::new(COMMON_PROCEDURES),
            diagnoses: Weighted::new(COMMON_DIAGNOSES),
            cancers: Weighted::new(CANCER_DIAGNOSES),
            treatment_functions: Weighted::new(&[
                ("110", 10),
                ("300", 15),
                ("502", 8),
                ("320", 6),
                ("130", 6),
                ("120", 5),
                ("410", 4),
                ("420", 7),
                ("191", 2),
                ("650", 6),
                ("101", 5),
                ("330", 4),
            ]),
            attendance: Weighted::new(&[
                ("5", 72),
                ("6", 6),
                ("2", 4),
                ("3", 8),
                ("4", 3),
                ("7", 7),
            ]),
            admin_categories: Weighted::new(&[
                (Some("01"), 955),
                (Some("02"), 20),
                (Some("03"), 5),
                (Some("04"), 2),
                (None, 18),
            ]),
        }
    }
}

/// The fields of one record; strings are written into reused buffers.
#[derive(Debug, Default)]
pub struct Record {
    /// `Der_Provider_Code`.
    pub provider: String,
    /// `Der_Provider_Site_Code`.
    pub site: String,
    /// `Der_Commissioner_Code`.
    pub commissioner: String,
    /// `Age_at_Start_of_Episode_SUS`.
    pub age_at_start: Option<i32>,
    /// `Der_Age_at_CDS_Activity_Date`.
    pub age_at_activity: Option<i32>,
    /// `Der_Procedure_All`, in the table's list style.
    pub procedures: Option<String>,
    /// `Der_Diagnosis_All`, in the table's list style.
    pub diagnoses: Option<String>,
    /// `Administrative_Category`.
    pub admin_category: Option<&'static str>,
    /// `Treatment_Function_Code` (outpatients).
    pub treatment_function: &'static str,
    /// `Attendance_Status` (outpatients).
    pub attendance: &'static str,
    /// `Admission_Method` (admitted spells).
    pub admission_method: &'static str,
    codes: Vec<Code>,
}

#[derive(Debug, Clone, Copy)]
enum Code {
    Known(&'static str),
    Random,
}

impl Population {
    /// Fills `record` with a new record; `style` decides how code lists are written.
    /// Each commissioner's code and expected share of all activity, as [`Self::sample`] assigns
    /// commissioners: mostly the provider's own (`provider % COMMISSIONERS`), else any.
    pub fn commissioner_shares(&self) -> Vec<(String, f64)> {
        let total: f64 = self.provider_weights.iter().sum();
        let mut shares = vec![OTHER_COMMISSIONER / COMMISSIONERS as f64; COMMISSIONERS];
        for (provider, weight) in self.provider_weights.iter().enumerate() {
            shares[provider % COMMISSIONERS] += OWN_COMMISSIONER * weight / total;
        }
        self.commissioner_codes
            .iter()
            .cloned()
            .zip(shares)
            .collect()
    }

    /// Draws one record into `record`.
    pub fn sample(&self, rng: &mut impl Rng, style: ListStyle, record: &mut Record) {
        let provider = *self.providers.pick(rng);
        let code = &self.provider_codes[provider];
        record.provider.clear();
        record.provider.push_str(code);
        if rng.random_bool(0.03) {
            record.provider.push_str("00");
        }
        record.site.clear();
        record.site.push_str(code);
        record
            .site
            .push_str(["01", "02", "03", "04"][rng.random_range(0..4)]);
        let commissioner = if rng.random_bool(OWN_COMMISSIONER) {
            provider % COMMISSIONERS
        } else {
            rng.random_range(0..COMMISSIONERS)
        };
        record.commissioner.clear();
        record
            .commissioner
            .push_str(&self.commissioner_codes[commissioner]);
        (record.age_at_start, record.age_at_activity) = ages(rng);
        record.admin_category = *self.admin_categories.pick(rng);
        record.treatment_function = self.treatment_functions.pick(rng);
        record.attendance = self.attendance.pick(rng);
        record.admission_method = ["11", "12", "13", "21", "22", "28"][rng.random_range(0..6)];
        self.procedures(rng, style, record);
        self.diagnoses(rng, style, record);
    }

    fn procedures(&self, rng: &mut impl Rng, style: ListStyle, record: &mut Record) {
        let roll: f64 = rng.random();
        // Admitted spells always carry procedures here; outpatient records often have none.
        let roll = match style {
            ListStyle::Comma => roll,
            ListStyle::Episodes => 0.47 + roll * 0.53,
        };
        let codes = &mut record.codes;
        codes.clear();
        let pick_from = |rng: &mut dyn rand::RngCore, list: &[&'static str]| {
            Code::Known(list[rng.random_range(0..list.len())])
        };
        if style == ListStyle::Comma && roll < 0.45 {
            record.procedures = None;
            return;
        }
        if style == ListStyle::Comma && roll < 0.47 {
            record.procedures = Some(String::new());
            return;
        }
        if roll < 0.50 {
            // Spine CT or MRI, usually the primary procedure.
            codes.push(Code::Known(if rng.random_bool(0.35) {
                "U054"
            } else {
                "U055"
            }));
        } else if roll < 0.515 {
            codes.push(pick_from(rng, BONE_AND_NEC_IMAGING));
            codes.push(pick_from(rng, SPINE_SITES));
        } else if roll < 0.53 {
            codes.push(pick_from(rng, BONE_AND_NEC_IMAGING));
            codes.push(pick_from(rng, OTHER_SITES));
        }
        let extra = rng.random_range(usize::from(codes.is_empty())..4);
        for _ in 0..extra {
            codes.push(if rng.random_bool(0.05) {
                Code::Random
            } else {
                Code::Known(self.procedures.pick(rng))
            });
        }
        if codes.len() > 1 && rng.random_bool(0.3) {
            codes.rotate_left(1);
        }
        let out = record.procedures.get_or_insert_with(String::new);
        out.clear();
        write_list(rng, style, codes, out, false);
    }

    fn diagnoses(&self, rng: &mut impl Rng, style: ListStyle, record: &mut Record) {
        if style == ListStyle::Comma && rng.random_bool(0.7) {
            record.diagnoses = None;
            return;
        }
        let codes = &mut record.codes;
        codes.clear();
        let count = rng.random_range(1..if style == ListStyle::Comma { 3 } else { 6 });
        for _ in 0..count {
            codes.push(Code::Known(self.diagnoses.pick(rng)));
        }
        if rng.random_bool(0.07) {
            let at = rng.random_range(0..=codes.len());
            codes.insert(at, Code::Known(self.cancers.pick(rng)));
        }
        let out = record.diagnoses.get_or_insert_with(String::new);
        out.clear();
        write_list(rng, style, codes, out, true);
    }
}

fn write_list(rng: &mut impl Rng, style: ListStyle, codes: &[Code], out: &mut String, icd10: bool) {
    let episodes = match style {
        ListStyle::Comma => 1,
        ListStyle::Episodes => rng.random_range(1..=codes.len().clamp(1, 3)),
    };
    let per_episode = codes.len().div_ceil(episodes).max(1);
    for (index, code) in codes.iter().enumerate() {
        let starts_episode = index % per_episode == 0;
        match style {
            ListStyle::Comma if index > 0 => out.push(','),
            ListStyle::Episodes if starts_episode => {
                out.push_str(if index == 0 { "||" } else { " ||" })
            }
            ListStyle::Episodes => out.push_str(" ,"),
            ListStyle::Comma => {}
        }
        match code {
            Code::Known(text) => out.push_str(text),
            Code::Random => random_procedure(rng, out),
        }
        if icd10 && rng.random_bool(0.02) {
            // The fifth and sixth characters SUS sometimes carries: K510 D, M545-A.
            out.push(if rng.random_bool(0.5) { ' ' } else { '-' });
            out.push(if rng.random_bool(0.5) { 'D' } else { 'A' });
        }
    }
}

/// (Age_at_Start_of_Episode_SUS, Der_Age_at_CDS_Activity_Date) with SUS's special values.
fn ages(rng: &mut impl Rng) -> (Option<i32>, Option<i32>) {
    let roll: f64 = rng.random();
    if roll < 0.01 {
        return (Some(rng.random_range(7001..=7007)), Some(0));
    }
    if roll < 0.015 {
        return (Some(999), Some(999));
    }
    let age = if rng.random_bool(0.15) {
        rng.random_range(0..=18)
    } else if rng.random_bool(0.002) {
        [18, 19, 120, 121][rng.random_range(0..4)]
    } else {
        19 + (rng.random::<f64>().powf(1.3) * 82.0) as i32
    };
    let activity_age = if rng.random_bool(0.1) { age + 1 } else { age };
    if roll < 0.035 {
        (None, Some(activity_age))
    } else if roll < 0.04 {
        (None, None)
    } else {
        (Some(age), Some(activity_age))
    }
}

/// A record's SUS sex code, from its own hash of the seed and identifier rather than the record's
/// random stream, so adding the column left every other generated value as it was.
pub fn sex(seed: u64, ident: i64) -> &'static str {
    // splitmix64: a well-mixed 64-bit hash.
    let mut x = seed ^ (ident as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    match x % 1000 {
        0..=484 => "1",
        485..=989 => "2",
        990..=994 => "0",
        _ => "9",
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn lists_follow_sus_formats() {
        let population = Population::default();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut record = Record::default();
        let (mut opa_lists, mut apcs_lists) = (0, 0);
        for _ in 0..2000 {
            population.sample(&mut rng, ListStyle::Comma, &mut record);
            if let Some(list) = record.procedures.as_deref().filter(|l| !l.is_empty()) {
                opa_lists += 1;
                assert!(
                    list.split(',').all(|c| c.len() == 4 && c.is_ascii()),
                    "OPA list {list}"
                );
            }
            population.sample(&mut rng, ListStyle::Episodes, &mut record);
            let list = record.diagnoses.as_deref().unwrap_or_default();
            assert!(list.starts_with("||"), "APCS list {list}");
            for episode in list.split("||").skip(1) {
                for code in episode.split(',') {
                    let code = code.trim_end();
                    assert!(
                        (4..=6).contains(&code.len()),
                        "APCS code '{code}' in {list}"
                    );
                }
            }
            apcs_lists += 1;
        }
        assert!(opa_lists > 500 && apcs_lists == 2000);
    }

    #[test]
    fn provider_codes_are_distinct() {
        let population = Population::default();
        let mut codes = population.provider_codes.clone();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), PROVIDERS);
    }
}
