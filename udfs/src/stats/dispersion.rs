//! Overdispersion of standardised ratios as FunnelPlotR estimates it (Spiegelhalter 2005): each
//! group's z-score, the extremes trimmed, the dispersion ratio phi and the between-group variance
//! tau², and the funnel limits widened by tau².
//!
//! With national denominators almost every provider sits outside Poisson limits; these limits
//! say which of them are unusual once real between-provider variation is allowed for.

use datafusion_common::{Result, exec_err};

use super::poisson::ratio_funnel_limits;
use super::z_score;

/// How the z-scores are formed and their extremes trimmed, FunnelPlotR's `sr_method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DispersionMethod {
    /// Log scale, `sqrt(E) * ln(O / E)`, the outer groups by rank left out (NHS Digital's SHMI).
    Shmi,
    /// Square-root scale, `2 * (sqrt(O) - sqrt(E))`, the outer z-scores winsorised (CQC).
    Cqc,
}

impl DispersionMethod {
    /// The method names an argument may give, as its planning error lists them.
    pub(crate) const CHOICES: &'static str = "'SHMI' or 'CQC'";

    /// `'SHMI'` or `'CQC'`, in any case; anything else is an error naming it.
    pub fn parse(name: &str) -> Result<Self> {
        if name.eq_ignore_ascii_case("SHMI") {
            Ok(Self::Shmi)
        } else if name.eq_ignore_ascii_case("CQC") {
            Ok(Self::Cqc)
        } else {
            exec_err!("the overdispersion method '{name}' is neither 'SHMI' nor 'CQC'")
        }
    }

    /// `SHMI` or `CQC`, as `parse` reads it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Shmi => "SHMI",
            Self::Cqc => "CQC",
        }
    }

    fn z_score(self, observed: f64, expected: f64) -> f64 {
        match self {
            Self::Shmi => expected.sqrt() * (observed / expected).ln(),
            Self::Cqc => 2.0 * (observed.sqrt() - expected.sqrt()),
        }
    }

    /// `1 / S²`, the inverse within-group variance of the z-score's scale at `expected`.
    fn weight(self, expected: f64) -> f64 {
        match self {
            Self::Shmi => expected,
            Self::Cqc => 4.0 * expected,
        }
    }
}

impl std::fmt::Display for DispersionMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "'{}'", self.name())
    }
}

/// What the trimmed z-scores say about the spread between groups.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dispersion {
    /// The dispersion ratio: the mean squared trimmed z-score (1 = as Poisson expects).
    pub phi: f64,
    /// The between-group variance added to each group's own (DerSimonian-Laird); 0 when
    /// `n * phi < n - 1`, NaN from a single group.
    pub tau2: f64,
    /// The groups whose z-scores were used (after SHMI's truncation; all of them for CQC).
    pub groups: usize,
}

/// phi and tau² of groups given as `(observed, expected)`, trimming `trim` (0.1 is FunnelPlotR's
/// 10%) at each end. Groups whose expected count is not positive have no z-score and are left
/// out. `None` when no group is left.
pub fn dispersion(
    groups: &[(f64, f64)],
    method: DispersionMethod,
    trim: f64,
) -> Result<Option<Dispersion>> {
    if !(trim > 0.0 && trim < 0.5) {
        return exec_err!("overdispersion: the trim {trim} is not between 0 and 0.5, such as 0.1");
    }
    if let Some((observed, _)) = groups.iter().find(|(observed, _)| *observed < 0.0) {
        return exec_err!("overdispersion: the observed count {observed} is negative");
    }
    let scored: Vec<(f64, f64)> = groups
        .iter()
        .filter(|(_, expected)| *expected > 0.0 && expected.is_finite())
        .map(|&(observed, expected)| (method.z_score(observed, expected), expected))
        .collect();
    let kept: Vec<(f64, f64)> = match method {
        DispersionMethod::Shmi => truncated(&scored, trim),
        DispersionMethod::Cqc => winsorised(&scored, trim),
    };
    if kept.is_empty() {
        return Ok(None);
    }
    let n = kept.len() as f64;
    let phi = kept.iter().map(|(z, _)| z * z).sum::<f64>() / n;
    let weights: Vec<f64> = kept.iter().map(|(_, e)| method.weight(*e)).collect();
    let tau2 = if n * phi < n - 1.0 {
        0.0
    } else {
        let sum: f64 = weights.iter().sum();
        let sum_of_squares: f64 = weights.iter().map(|w| w * w).sum();
        let spread_of_weights = sum - sum_of_squares / sum;
        if spread_of_weights > 0.0 {
            ((n * phi - (n - 1.0)) / spread_of_weights).max(0.0)
        } else {
            // One group: no between-group variance can be estimated.
            f64::NAN
        }
    };
    Ok(Some(Dispersion {
        phi,
        tau2,
        groups: kept.len(),
    }))
}

/// SHMI's truncation: groups split by rank of z-score into `1 / trim` equal parts, the first and
/// last left out (`floor(rank * k / (n + 1))` outside `1..k-1`, ties taking their average rank).
fn truncated(scored: &[(f64, f64)], trim: f64) -> Vec<(f64, f64)> {
    let parts = 1.0 / trim;
    let ranks = average_ranks(scored.iter().map(|(z, _)| *z));
    let n = scored.len() as f64;
    scored
        .iter()
        .zip(ranks)
        .filter(|(_, rank)| {
            let part = (rank * parts / (n + 1.0)).floor();
            part > 0.0 && part < parts - 1.0
        })
        .map(|(group, _)| *group)
        .collect()
}

/// CQC's winsorisation: z-scores beyond the `trim` and `1 - trim` quantiles set to them.
fn winsorised(scored: &[(f64, f64)], trim: f64) -> Vec<(f64, f64)> {
    let mut sorted: Vec<f64> = scored.iter().map(|(z, _)| *z).collect();
    sorted.sort_by(f64::total_cmp);
    let (Some(low), Some(high)) = (quantile(&sorted, trim), quantile(&sorted, 1.0 - trim)) else {
        return Vec::new();
    };
    scored
        .iter()
        .map(|&(z, expected)| (z.clamp(low, high), expected))
        .collect()
}

/// R's default (type 7) quantile of sorted values: linear between the order statistics at
/// `(n - 1) * p`.
fn quantile(sorted: &[f64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let position = last as f64 * p;
    let below = position.floor() as usize;
    let above = (below + 1).min(last);
    let fraction = position - below as f64;
    Some(sorted[below] + fraction * (sorted[above] - sorted[below]))
}

/// Each value's rank from 1, tied values sharing the mean of their ranks (R's `rank` default).
fn average_ranks(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let values: Vec<f64> = values.collect();
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|a, b| values[*a].total_cmp(&values[*b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let tied = order[start..]
            .iter()
            .take_while(|index| values[**index] == values[order[start]])
            .count();
        // Ranks start..start+tied (from 1) share their mean.
        let shared = start as f64 + (tied as f64 + 1.0) / 2.0;
        for index in &order[start..start + tied] {
            ranks[*index] = shared;
        }
        start += tied;
    }
    ranks
}

/// The funnel limits of a standardised ratio at `expected`, widened by `tau2` when `phi > 1`:
/// SHMI `exp(±z * sqrt(1/E + tau²))`; CQC `(1 ± z * sqrt(1/(4E) + tau²))²`, the square-root
/// scale's limits squared back to the ratio's, a lower limit below 0 on that scale being 0. When
/// `phi <= 1` there is no overdispersion and these are the exact Poisson limits, as FunnelPlotR
/// then draws. `None` when `expected` is not positive.
pub fn adjusted_ratio_limits(
    expected: f64,
    level: f64,
    method: DispersionMethod,
    dispersion: Dispersion,
) -> Result<Option<[f64; 2]>> {
    if expected <= 0.0 || !expected.is_finite() {
        return Ok(None);
    }
    if dispersion.phi.is_nan() || dispersion.phi <= 1.0 {
        return ratio_funnel_limits(expected, level);
    }
    if dispersion.tau2 < 0.0 || dispersion.tau2.is_nan() {
        return exec_err!(
            "funnel_ratio_od: tau2 {} is not a variance",
            dispersion.tau2
        );
    }
    let z = z_score(level)?;
    Ok(Some(match method {
        DispersionMethod::Shmi => {
            let spread = z * (1.0 / expected + dispersion.tau2).sqrt();
            [(-spread).exp(), spread.exp()]
        }
        DispersionMethod::Cqc => {
            let spread = z * (1.0 / (4.0 * expected) + dispersion.tau2).sqrt();
            [(1.0 - spread).max(0.0).powi(2), (1.0 + spread).powi(2)]
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_share_their_average_rank() {
        let ranks = average_ranks([3.0, 1.0, 3.0, 2.0, f64::NEG_INFINITY].into_iter());
        assert_eq!(ranks, vec![4.5, 2.0, 4.5, 3.0, 1.0]);
    }

    #[test]
    fn quantile_is_r_type_7() {
        // R: quantile(c(1, 2, 4, 8, 16), c(0.1, 0.9)) is 1.4 and 12.8.
        let sorted = [1.0, 2.0, 4.0, 8.0, 16.0];
        assert!((quantile(&sorted, 0.1).unwrap_or(f64::NAN) - 1.4).abs() < 1e-12);
        assert!((quantile(&sorted, 0.9).unwrap_or(f64::NAN) - 12.8).abs() < 1e-12);
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn shmi_truncation_keeps_the_middle_parts() {
        // 19 groups: floor(rank * 10 / 20) is 0 for ranks 1 and 9 or more for ranks 18 and 19.
        let groups: Vec<(f64, f64)> = (1..=19).map(|i| (f64::from(i), 10.0)).collect();
        let kept = truncated(&groups, 0.1);
        assert_eq!(kept.len(), 16);
        assert_eq!(kept.first().map(|g| g.0), Some(2.0));
        assert_eq!(kept.last().map(|g| g.0), Some(17.0));
    }

    #[test]
    fn no_extra_spread_gives_no_tau2() {
        let groups = [(10.0, 10.0), (11.0, 10.0), (9.0, 10.0)];
        let result = dispersion(&groups, DispersionMethod::Cqc, 0.1);
        let Ok(Some(found)) = result else {
            panic!("expected a dispersion, got {result:?}");
        };
        assert!(found.phi < 1.0);
        assert_eq!(found.tau2, 0.0);
    }
}
