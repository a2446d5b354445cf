//! Clinical code lists with plausible frequencies, and the shapes of a record's codes.

use rand::Rng;

/// Picks items in proportion to their weights (cumulative weights and a binary search).
#[derive(Debug, Clone)]
pub struct Weighted<T> {
    items: Vec<T>,
    cumulative: Vec<u32>,
}

impl<T: Clone> Weighted<T> {
    pub fn new(pairs: &[(T, u32)]) -> Self {
        let mut total = 0;
        let cumulative = pairs
            .iter()
            .map(|(_, w)| {
                total += w;
                total
            })
            .collect();
        Self {
            items: pairs.iter().map(|(item, _)| item.clone()).collect(),
            cumulative,
        }
    }

    pub fn pick<'a>(&'a self, rng: &mut impl Rng) -> &'a T {
        let total = self.cumulative.last().copied().unwrap_or(1);
        let ticket = rng.random_range(0..total);
        let index = self.cumulative.partition_point(|&c| c <= ticket);
        &self.items[index.min(self.items.len() - 1)]
    }
}

/// OPCS-4 codes common in outpatient and inpatient activity that are not spine imaging.
pub const COMMON_PROCEDURES: &[(&str, u32)] = &[
    ("X621", 300),
    ("X622", 40),
    ("Z942", 90),
    ("Z943", 90),
    ("Y981", 30),
    ("U051", 30),
    ("U212", 25),
    ("U201", 20),
    ("U071", 10),
    ("U081", 10),
    ("U106", 8),
    ("U131", 6),
    ("U134", 6),
    ("U213", 8),
    ("U056", 6),
    ("A651", 10),
    ("C872", 20),
    ("C862", 10),
    ("E036", 8),
    ("M459", 10),
    ("S068", 12),
    ("T522", 8),
    ("W902", 20),
    ("W903", 10),
    ("X292", 10),
    ("Z662", 6),
    ("Z671", 6),
    ("O161", 4),
    ("W851", 6),
    ("H221", 10),
];

/// The imaging codes the rule pairs with a spinal site code.
pub const BONE_AND_NEC_IMAGING: &[&str] = &[
    "U132", "U133", "U135", "U136", "U211", "U212", "U216", "U217",
];

pub const SPINE_SITES: &[&str] = &["Z665", "O162"];
pub const OTHER_SITES: &[&str] = &["Z942", "Z943", "Z846", "Z812", "O161"];

/// ICD-10 codes, four characters, no dots, three-character codes padded with X.
pub const COMMON_DIAGNOSES: &[(&str, u32)] = &[
    ("M545", 60),
    ("M543", 25),
    ("M511", 15),
    ("M179", 20),
    ("R51X", 10),
    ("I10X", 40),
    ("E119", 35),
    ("J459", 20),
    ("K219", 15),
    ("G35X", 5),
    ("N390", 10),
    ("R074", 8),
    ("M480", 8),
    ("M419", 4),
    ("Z988", 6),
    ("K510", 3),
    ("D509", 6),
    ("D649", 6),
    ("D36X", 2),
    ("D499", 2),
];

/// Cancer codes the exclusion catches: C00-C99, D00-D09, D37-D48.
pub const CANCER_DIAGNOSES: &[(&str, u32)] = &[
    ("C509", 30),
    ("C61X", 25),
    ("C189", 15),
    ("C349", 20),
    ("C795", 10),
    ("C900", 6),
    ("D051", 4),
    ("D069", 2),
    ("D374", 3),
    ("D410", 2),
    ("D45X", 2),
    ("D471", 3),
    ("D486", 2),
];

/// A random OPCS-4-shaped code (a letter and three digits), for the long tail.
pub fn random_procedure(rng: &mut impl Rng, out: &mut String) {
    const LETTERS: &[u8] = b"ABCDEFGHJKLMNOPQRSTVWXY";
    out.push(char::from(LETTERS[rng.random_range(0..LETTERS.len())]));
    for _ in 0..3 {
        out.push(char::from(b'0' + rng.random_range(0..10u8)));
    }
}
