-- Commissioner DSR funnel: each commissioner's age/sex standardised rate of appointments the EBI rule "Low back pain imaging" flags per 100,000 residents (ESP 2013, as 06), on PHE's funnel for directly standardised rates (calculate_funnel_limits with rate_type "dsr"): the limits at its derived denominator (100,000 × events / DSR) around the weighted average rate, 95% and 99.8%, and its significance in PHE's words (assign_funnel_significance).
-- @chart funnel statistic=rate x=derived_denominator y=dsr label=commissioner baseline=average_rate multiplier=100000 units=per_100,000_residents
-- @requires population, opa.sex
-- @dimensions commissioner
-- Parameters: $from_month, $to_month (yyyymm, inclusive). Populations are the latest population year no later than the period's end; activity with unknown age or sex is left out, as in 06, and appointments count as independent events. As PHE computes it, the weighted average is all commissioners' events over the sum of their derived denominators, which a commissioner with fewer than 10 events (no published DSR) has none of; such a commissioner has no limits and the significance PHE gives it.
WITH flagged AS (
    SELECT
        der_commissioner_code AS commissioner,
        esp_age_band(coalesce(age_at_start_of_episode_sus, der_age_at_cds_activity_date)) AS age_band,
        CAST(sex AS VARCHAR) AS sex
    FROM opa
    WHERE ebi_lower_back_imaging(
              der_procedure_all, age_at_start_of_episode_sus, der_age_at_cds_activity_date,
              der_diagnosis_all, administrative_category) IS NOT NULL
      AND sus_month(der_activity_month) BETWEEN $from_month AND $to_month
),
population_year AS (
    SELECT max(year) AS year FROM population WHERE year <= CAST(left($to_month, 4) AS INT)
),
flagged_bands AS (
    SELECT commissioner, sex, age_band, count(*) AS events FROM flagged GROUP BY 1, 2, 3
),
bands AS (
    SELECT p.area_code AS commissioner, p.sex, p.age_band, p.population,
           esp2013.population AS standard, coalesce(sum(f.events), 0) AS events
    FROM population AS p
    JOIN population_year AS y ON p.year = y.year
    JOIN esp2013 ON esp2013.age_band = p.age_band
    LEFT JOIN flagged_bands AS f
           ON f.commissioner = p.area_code AND f.sex = p.sex AND f.age_band = p.age_band
    GROUP BY 1, 2, 3, 4, 5
),
rates AS (
    SELECT commissioner, sum(events) AS events,
           dsr(events, population, standard, 0.95, 100000)['value'] AS dsr
    FROM bands GROUP BY commissioner
),
derived AS (
    SELECT commissioner, events, dsr,
           CASE WHEN events > 0 THEN 100000.0 * events / dsr END AS derived_denominator
    FROM rates
),
average AS (
    SELECT 100000.0 * sum(events) / sum(derived_denominator) AS rate FROM derived
),
limits AS (
    SELECT d.commissioner, d.events, d.dsr, d.derived_denominator, a.rate AS average_rate,
           funnel_rate(a.rate, d.derived_denominator, 0.95, 100000) AS funnel95,
           funnel_rate(a.rate, d.derived_denominator, 0.998, 100000) AS funnel998,
           CASE WHEN d.events < 10 THEN 'Not applicable for events less than 10 for dsrs'
                ELSE funnel_significance(d.events, d.derived_denominator, a.rate / 100000)
           END AS significance
    FROM derived AS d
    CROSS JOIN average AS a
)
SELECT
    commissioner,
    events,
    round(dsr, 3) AS dsr,
    round(derived_denominator, 1) AS derived_denominator,
    round(average_rate, 3) AS average_rate,
    round(funnel95['lower'], 3) AS funnel_lower95,
    round(funnel95['upper'], 3) AS funnel_upper95,
    round(funnel998['lower'], 3) AS funnel_lower998,
    round(funnel998['upper'], 3) AS funnel_upper998,
    significance
FROM limits
ORDER BY derived_denominator DESC NULLS LAST, commissioner;
