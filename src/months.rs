//! Calendar months as SUS writes them (`Der_Activity_Month` = yyyymm), and ranges of them.

use std::fmt;
use std::str::FromStr;

/// A calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i32,
    month: u32,
}

impl Month {
    /// The month `month` (1-12) of `year`; `None` for a month outside 1-12.
    pub fn new(year: i32, month: u32) -> Option<Self> {
        ((1..=12).contains(&month) && (1900..=9999).contains(&year)).then_some(Self { year, month })
    }

    /// The calendar year.
    pub fn year(&self) -> i32 {
        self.year
    }

    /// `202404`, as in `Der_Activity_Month`.
    pub fn yyyymm(&self) -> String {
        format!("{:04}{:02}", self.year, self.month)
    }

    /// The month after this one.
    pub fn next(&self) -> Self {
        match self.month {
            12 => Self {
                year: self.year + 1,
                month: 1,
            },
            m => Self {
                year: self.year,
                month: m + 1,
            },
        }
    }

    /// Days from 1970-01-01 to the month's first day (Arrow's Date32).
    pub fn first_day_since_epoch(&self) -> i32 {
        days_from_civil(self.year, self.month, 1)
    }

    /// Days in the month.
    pub fn days(&self) -> i32 {
        self.next().first_day_since_epoch() - self.first_day_since_epoch()
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i32, month: u32, day: u32) -> i32 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = month as i32;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day as i32 - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl FromStr for Month {
    type Err = String;

    /// Accepts `2024-04` or `202404`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let digits: String = text.chars().filter(|c| *c != '-').collect();
        let parsed = (digits.len() == 6 && digits.chars().all(|c| c.is_ascii_digit()))
            .then(|| Some((digits[..4].parse().ok()?, digits[4..].parse().ok()?)))
            .flatten()
            .and_then(|(year, month)| Month::new(year, month));
        parsed.ok_or_else(|| {
            format!("'{text}' is not a month: expected YYYY-MM or YYYYMM, such as 2024-04")
        })
    }
}

/// An inclusive range of months, written `2023-04..2025-03`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonthRange {
    /// The first month.
    pub from: Month,
    /// The last month, included.
    pub to: Month,
}

impl MonthRange {
    /// Every month of the range, in order.
    pub fn months(&self) -> Vec<Month> {
        let mut months = vec![self.from];
        while let Some(last) = months.last().copied().filter(|m| *m < self.to) {
            months.push(last.next());
        }
        months
    }
}

impl FromStr for MonthRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (from, to) = text.split_once("..").ok_or_else(|| {
            format!("'{text}' is not a month range: expected FROM..TO, such as 2023-04..2025-03")
        })?;
        let (from, to): (Month, Month) = (from.parse()?, to.parse()?);
        if from > to {
            return Err(format!("month range '{text}' ends before it starts"));
        }
        Ok(Self { from, to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_and_count() {
        let range: MonthRange = "2023-04..2025-03".parse().expect("a valid range");
        let months = range.months();
        assert_eq!(months.len(), 24);
        assert_eq!(months[0].yyyymm(), "202304");
        assert_eq!(months[23].yyyymm(), "202503");
        assert_eq!(
            "202412".parse::<Month>().map(|m| m.to_string()),
            Ok("2024-12".into())
        );
        assert!("202413".parse::<Month>().is_err());
        assert!("2025-03..2023-04".parse::<MonthRange>().is_err());
    }

    #[test]
    fn calendar_arithmetic() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        let february = Month::new(2024, 2).unwrap_or_else(|| panic!("valid month"));
        assert_eq!(february.days(), 29);
        assert_eq!(Month::new(2023, 2).map(|m| m.days()), Some(28));
    }
}
