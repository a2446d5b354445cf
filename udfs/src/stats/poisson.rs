//! Poisson limits of a count: exact (chi-squared, that is gamma, quantiles), PHE's rule of exact
//! below 10 events and Byar's from 10, and the funnels built from them.

use datafusion_common::{Result, exec_err};
use statrs::distribution::{ContinuousCDF, Gamma};
use statrs::function::gamma::gamma_lr;

use super::byar::byar_interval;
use super::z_score;

/// From this many events PHE uses Byar's approximation; below it, exact Poisson limits.
pub const BYAR_FROM: f64 = 10.0;

/// The gamma quantile `qgamma(p, shape)`, which is R's `qchisq(p, 2 * shape) / 2`; 0 at shape 0
/// (the chi-squared with no degrees of freedom is 0), as R gives it.
fn gamma_quantile(p: f64, shape: f64) -> Result<f64> {
    if shape == 0.0 {
        return Ok(0.0);
    }
    match Gamma::new(shape, 1.0) {
        Ok(gamma) => Ok(gamma.inverse_cdf(p)),
        Err(error) => exec_err!("no gamma distribution of shape {shape}: {error}"),
    }
}

/// The tail probability on each side for a confidence level already checked by `z_score`.
fn tail(level: f64) -> f64 {
    (1.0 - level) / 2.0
}

/// The exact Poisson limits of a count `o` at `level` (0.9..1), as PHE's `qchisq` forms:
/// `qchisq(α/2, 2o) / 2` and `qchisq(1 - α/2, 2o + 2) / 2`.
pub fn exact_poisson_interval(o: f64, level: f64) -> Result<[f64; 2]> {
    if o < 0.0 || o.is_nan() {
        return exec_err!("the count {o} is negative");
    }
    let alpha = tail(level);
    Ok([
        gamma_quantile(alpha, o)?,
        gamma_quantile(1.0 - alpha, o + 1.0)?,
    ])
}

/// The limits of a count as PHE's rates and indirectly standardised ratios take them: exact
/// below 10 events, Byar's from 10.
pub fn count_interval(o: f64, level: f64) -> Result<[f64; 2]> {
    if o < BYAR_FROM {
        exact_poisson_interval(o, level)
    } else {
        byar_interval(o, z_score(level)?)
    }
}

/// FunnelPlotR's unadjusted limits of an observed/expected ratio around 1 at `expected`:
/// `qgamma(α/2, E) / E` and `qgamma(1 - α/2, E + 1) / E`. `None` when `expected` is not positive.
pub fn ratio_funnel_limits(expected: f64, level: f64) -> Result<Option<[f64; 2]>> {
    if expected <= 0.0 || !expected.is_finite() {
        return Ok(None);
    }
    let alpha = tail(level);
    Ok(Some([
        gamma_quantile(alpha, expected)? / expected,
        gamma_quantile(1.0 - alpha, expected + 1.0)? / expected,
    ]))
}

/// The largest `shape` (to within rounding) with `P(shape, x) >= target`, where the regularised
/// lower gamma `P` falls as the shape grows; `None` when even shape 0 falls short.
fn shape_where_gamma_cdf_reaches(x: f64, target: f64, shift: f64) -> Option<f64> {
    let cdf = |count: f64| gamma_lr(count + shift, x);
    if shift > 0.0 && cdf(0.0) < target {
        return None;
    }
    let mut high = x + 10.0 * x.sqrt() + 50.0;
    while cdf(high) >= target {
        high *= 2.0;
    }
    let mut low = 0.0_f64;
    // Bisection to the last bit: the function is monotone, a few hundred gamma calls at most.
    for _ in 0..200 {
        let mid = low + (high - low) / 2.0;
        if mid <= low || mid >= high {
            break;
        }
        if cdf(mid) >= target {
            low = mid;
        } else {
            high = mid;
        }
    }
    Some(low + (high - low) / 2.0)
}

/// PHE's funnel limits for a rate (`calculate_funnel_limits`, statistic `"rate"`), as fractions
/// of the average rate, at `expected = average × denominator` events. PHE draws its funnel through
/// points at whole numbers of events `O`: the upper limit `O / n` at the denominator `n` whose
/// expected count is the exact lower limit of `O` (`P(X >= O) = α/2`), the lower limit where it
/// is the exact upper limit (`P(X <= O) = α/2`). This solves the same equations for a continuous
/// `O` at the given denominator, so at PHE's points it returns PHE's values:
/// upper `O` with `P(O, E) = α/2`, lower `O` with `P(O + 1, E) = 1 - α/2` (0 where none).
/// `None` when `expected` is not positive.
pub fn rate_funnel_limits(expected: f64, level: f64) -> Option<[f64; 2]> {
    if expected <= 0.0 || !expected.is_finite() {
        return None;
    }
    let alpha = tail(level);
    let upper = shape_where_gamma_cdf_reaches(expected, alpha, 0.0)?;
    let lower = shape_where_gamma_cdf_reaches(expected, 1.0 - alpha, 1.0).unwrap_or(0.0);
    Some([lower / expected, upper / expected])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_events_have_a_lower_limit_of_zero_and_the_exact_upper_limit() -> Result<()> {
        // qchisq(0.975, 2) / 2 = -ln(0.025).
        let [lower, upper] = exact_poisson_interval(0.0, 0.95)?;
        assert_eq!(lower, 0.0);
        assert!((upper - (-(0.025_f64).ln())).abs() < 1e-12, "{upper}");
        Ok(())
    }

    #[test]
    fn counts_switch_from_exact_to_byar_at_ten() -> Result<()> {
        assert_eq!(
            count_interval(9.0, 0.95)?,
            exact_poisson_interval(9.0, 0.95)?
        );
        assert_eq!(
            count_interval(10.0, 0.95)?,
            byar_interval(10.0, z_score(0.95)?)?
        );
        assert!(count_interval(-1.0, 0.95).is_err());
        Ok(())
    }

    #[test]
    fn the_rate_funnel_passes_through_phes_points() -> Result<()> {
        // At the expected count that is the exact lower limit of O events, the upper limit is O.
        for events in [1.0, 4.0, 25.0, 300.0] {
            let [lower_of_o, upper_of_o] = exact_poisson_interval(events, 0.95)?;
            let [_, upper] = rate_funnel_limits(lower_of_o, 0.95).expect("positive expected");
            assert!(
                (upper * lower_of_o - events).abs() < 1e-7 * events,
                "{events}"
            );
            let [lower, _] = rate_funnel_limits(upper_of_o, 0.95).expect("positive expected");
            assert!(
                (lower * upper_of_o - events).abs() < 1e-7 * events,
                "{events}"
            );
        }
        assert_eq!(rate_funnel_limits(0.0, 0.95), None);
        Ok(())
    }
}
