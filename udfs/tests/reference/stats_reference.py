"""Reference values for udfs/tests/stats.rs, worked out independently of ebiq's Rust code.

Run: python3 -m venv v && v/bin/pip install scipy statsmodels && v/bin/python stats_reference.py

- Wilson intervals come from statsmodels' proportion_confint(method="wilson"), a separate
  implementation of the Wilson score interval.
- Byar's limits are the published formula (PHE "Technical guide: confidence intervals") with
  scipy's normal quantile, in exact rational arithmetic where possible.
- The DSR example is the two-area, two-band worked example in stats.rs, done step by step with
  Python's fractions, then Byar/Dobson with scipy's quantile (PHE "Technical guide: age
  standardised rates").
- Overdispersion follows FunnelPlotR's description of its SR methods (z-scores, SHMI's
  truncation by rank groups, CQC's winsorising at R's type-7 quantiles, phi and the
  DerSimonian-Laird tau2) with scipy's rankdata and numpy's quantile doing the ranking and
  quantiles; the adjusted limits are Spiegelhalter's (2005) formulas with scipy's normal quantile.
- Funnel limits are found by bisection: the proportion at denominator n whose Wilson interval's
  far limit equals the baseline (the definition behind PHE's closed form), not the closed form.
"""
from fractions import Fraction as F
from math import sqrt

import numpy as np
from scipy.stats import norm, rankdata
from statsmodels.stats.proportion import proportion_confint


def z(conf):
    return norm.ppf(conf + (1 - conf) / 2)


def byar(o, conf):
    zz = z(conf)
    lower = 0.0 if o == 0 else o * (1 - 1 / (9 * o) - zz / (3 * sqrt(o))) ** 3
    upper = (o + 1) * (1 - 1 / (9 * (o + 1)) + zz / (3 * sqrt(o + 1))) ** 3
    return lower, upper


def wilson(x, n, conf):
    lower, upper = proportion_confint(x, n, alpha=1 - conf, method="wilson")
    return x / n, lower, upper


def funnel(baseline, n, conf):
    def wilson_far(p, side):
        lower, upper = proportion_confint(p * n, n, alpha=1 - conf, method="wilson")
        return upper if side == "low" else lower

    def solve(side):
        lo, hi = (0.0, baseline) if side == "low" else (baseline, 1.0)
        for _ in range(200):
            mid = (lo + hi) / 2
            reached = wilson_far(mid, side)
            if side == "low":
                lo, hi = (mid, hi) if reached < baseline else (lo, mid)
            else:
                lo, hi = (lo, mid) if reached > baseline else (mid, hi)
        return (lo + hi) / 2

    return solve("low"), solve("high")


def dsr_example():
    # area A: bands (count, population, standard): (12, 2000, 6000), (30, 1500, 4000)
    # area B: (3, 4000, 6000), (6, 1000, 4000)   (total 9 < 10: suppressed)
    bands = [(12, 2000, 6000), (30, 1500, 4000)]
    w = sum(F(s) for _, _, s in bands)
    rate = sum(F(o) * s / n for o, n, s in bands) / w
    var = sum(F(o) * F(s, n) ** 2 for o, n, s in bands) / w**2
    o = sum(o for o, _, _ in bands)
    out = {}
    for conf in (0.95, 0.998):
        lo, hi = byar(o, conf)
        scale = sqrt(float(var) / o) * 100000
        out[conf] = (float(rate) * 100000, float(rate) * 100000 + scale * (lo - o),
                     float(rate) * 100000 + scale * (hi - o))
    return rate, var, out


if __name__ == "__main__":
    print("z", repr(z(0.95)), repr(z(0.998)))
    for x, n in [(65, 100), (0, 50), (50, 50), (1, 3), (1234, 56789)]:
        for conf in (0.95, 0.998):
            print("wilson", x, n, conf, *map(repr, wilson(x, n, conf)))
    for o in [0, 1, 9, 65, 389, 12345]:
        for conf in (0.95, 0.998):
            print("byar", o, conf, *map(repr, byar(o, conf)))
    for baseline, n in [(0.12, 50), (0.12, 1000), (0.5, 7), (0.03, 20000)]:
        for conf in (0.95, 0.998):
            print("funnel", baseline, n, conf, *map(repr, funnel(baseline, n, conf)))
    rate, var, out = dsr_example()
    print("dsr rate", rate, float(rate) * 100000, "var", var)
    for conf, values in out.items():
        print("dsr", conf, *map(repr, values))


# --- Poisson-based functions (rate, isr, israte, funnel_ratio, funnel_rate, funnel_significance),
# from scipy's chi-squared quantiles and Poisson tail sums, independently of ebiq's gamma code.
from scipy.stats import chi2, poisson
from scipy.optimize import brentq


def count_limits(o, conf):
    """PHE: exact qchisq limits below 10 events, Byar's from 10."""
    if o < 10:
        a = (1 - conf) / 2
        lower = 0.0 if o == 0 else chi2.ppf(a, 2 * o) / 2
        return lower, chi2.ppf(1 - a, 2 * o + 2) / 2
    return byar(o, conf)


def rate(x, n, conf, mult):
    lo, hi = count_limits(x, conf)
    return x / n * mult, lo / n * mult, hi / n * mult


def funnel_ratio(e, conf):
    a = (1 - conf) / 2
    return chi2.ppf(a, 2 * e) / 2 / e, chi2.ppf(1 - a, 2 * (e + 1)) / 2 / e


def phe_rate_funnel_point(o, av, conf):
    """PHE's plotted points for whole events o: (n, lower) and (n, upper), found by solving the
    Poisson tail sums (scipy's poisson, not a gamma quantile) for the mean by root finding."""
    a = (1 - conf) / 2
    z_upper = brentq(lambda z: poisson.sf(o - 1, z) - a, 1e-12, 10 * o + 100)  # P(X >= o) = a
    z_lower = brentq(lambda z: poisson.cdf(o, z) - a, 1e-12, 10 * o + 100)  # P(X <= o) = a
    return (z_upper / av, o / (z_upper / av)), (z_lower / av, o / (z_lower / av))


# Twenty providers' (observed, expected), spread wider than Poisson allows.
OD_EXPECTED = [25, 40, 60, 80, 100, 150, 200, 250, 300, 400, 500, 650, 800, 1000, 1200, 1500,
               1800, 2200, 2600, 3000]
OD_RATIOS = [1.4, 0.7, 1.2, 0.85, 1.1, 0.9, 1.3, 0.75, 1.05, 0.95, 1.15, 0.8, 1.25, 0.9, 1.0,
             1.1, 0.85, 1.2, 0.95, 1.05]
OD_GROUPS = [(round(e * r), e) for e, r in zip(OD_EXPECTED, OD_RATIOS)]


def overdispersion(groups, method, trim=0.1):
    o = np.array([g[0] for g in groups], dtype=float)
    e = np.array([g[1] for g in groups], dtype=float)
    if method == "SHMI":
        zs = np.sqrt(e) * np.log(o / e)
        k = 1 / trim
        part = np.floor(rankdata(zs, method="average") * k / (len(zs) + 1))
        keep = (part > 0) & (part < k - 1)
        w, s = zs[keep], 1 / np.sqrt(e[keep])
    else:
        zs = 2 * (np.sqrt(o) - np.sqrt(e))
        lo, hi = np.quantile(zs, [trim, 1 - trim])  # numpy's default "linear" is R's type 7
        w, s = np.clip(zs, lo, hi), 1 / (2 * np.sqrt(e))
    n = len(w)
    phi = float(np.sum(w ** 2) / n)
    inv = 1 / s ** 2
    tau2 = 0.0 if n * phi < n - 1 else max(0.0, (n * phi - (n - 1)) / (inv.sum() - (inv ** 2).sum() / inv.sum()))
    return phi, float(tau2), n


def od_limits(e, conf, method, tau2):
    zz = z(conf)
    if method == "SHMI":
        spread = zz * sqrt(1 / e + tau2)
        return np.exp(-spread), np.exp(spread)
    spread = zz * sqrt(1 / (4 * e) + tau2)
    return max(0.0, 1 - spread) ** 2, (1 + spread) ** 2


if __name__ == "__main__":
    print("od_groups", OD_GROUPS)
    for method in ("SHMI", "CQC"):
        phi, tau2, n = overdispersion(OD_GROUPS, method)
        print("overdispersion", method, repr(phi), repr(tau2), n)
        for e in (50.0, 500.0, 5000.0):
            for conf in (0.95, 0.998):
                print("funnel_ratio_od", method, e, conf, *map(lambda v: repr(float(v)), od_limits(e, conf, method, tau2)))
    for x, n in [(0, 1000), (1, 1000), (9, 5000), (10, 5000), (389, 123456)]:
        for conf in (0.95, 0.998):
            print("rate", x, n, conf, *map(repr, rate(x, n, conf, 100000)))
    for e in [0.5, 3.0, 12.5, 250.0]:
        for conf in (0.95, 0.998):
            print("funnel_ratio", e, conf, *map(repr, funnel_ratio(e, conf)))
    for o in [3, 40, 500]:
        for conf in (0.95, 0.998):
            print("rate_funnel", o, 0.0045, conf, *map(repr, phe_rate_funnel_point(o, 0.0045, conf)))
    # isr example: two bands, observed (4, 9), population (1000, 3000), reference rates (0.002, 0.004)
    obs, exp = 13, 1000 * 0.002 + 3000 * 0.004
    for conf in (0.95, 0.998):
        lo, hi = count_limits(obs, conf)
        print("isr", conf, obs, repr(exp), repr(obs / exp), repr(lo / exp), repr(hi / exp))
    # small isr: observed 3 of expected 14
    for conf in (0.95, 0.998):
        lo, hi = count_limits(3, conf)
        print("isr_small", conf, repr(3 / 14), repr(lo / 14), repr(hi / 14))
    # israte: reference counts (20, 120) of reference populations (10000, 30000)
    exp_r = 1000 * F(20, 10000) + 3000 * F(120, 30000)
    ref = F(140, 40000) * 100000
    for conf in (0.95, 0.998):
        lo, hi = count_limits(obs, conf)
        print("israte", conf, float(exp_r), float(ref), repr(float(obs / exp_r * ref)),
              repr(lo / float(exp_r) * float(ref)), repr(hi / float(exp_r) * float(ref)))
