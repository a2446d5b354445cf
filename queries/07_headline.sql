-- Headline for the period (the programme's table): appointments the EBI rule "Low back pain imaging" flags, the national age/sex standardised rate per 100,000 (ESP 2013, Dobson 95% interval), the spread of commissioners' standardised rates (N-fold: highest / lowest; 10th, 25th, 50th and 90th percentiles), and the reduction opportunity: the flagged activity that would not happen if every commissioner above the 25th-percentile rate came down to it.
-- @requires population, opa.sex
-- @dimensions period
-- Parameters: $from_month, $to_month (yyyymm, inclusive). Percentiles interpolate linearly between commissioners (as Excel's PERCENTILE.INC and R's default), over the commissioners whose standardised rate is published (10 events or more). A commissioner above the 25th percentile would have flagged (1 - p25 / its rate) fewer appointments.
WITH flagged AS (
    SELECT
        der_commissioner_code AS commissioner,
        der_activity_month AS month,
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
national AS (
    SELECT dsr(events, population, standard, 0.95, 100000) AS d95
    FROM (SELECT sex, age_band, sum(events) AS events, sum(population) AS population,
                 max(standard) AS standard
          FROM bands GROUP BY sex, age_band) AS england
),
activity AS (
    SELECT commissioner, count(*) AS flagged FROM flagged GROUP BY commissioner
),
rates AS (
    SELECT b.commissioner, dsr(b.events, b.population, b.standard, 0.95, 100000)['value'] AS rate
    FROM bands AS b GROUP BY b.commissioner
),
spread AS (
    SELECT count(rate) AS commissioners,
           max(rate) / min(rate) AS n_fold,
           percentile_cont(0.10) WITHIN GROUP (ORDER BY rate) AS p10,
           percentile_cont(0.25) WITHIN GROUP (ORDER BY rate) AS p25,
           percentile_cont(0.50) WITHIN GROUP (ORDER BY rate) AS p50,
           percentile_cont(0.90) WITHIN GROUP (ORDER BY rate) AS p90
    FROM rates WHERE rate IS NOT NULL
),
reduction AS (
    SELECT sum(a.flagged * (1 - s.p25 / r.rate)) AS avoidable
    FROM rates AS r
    JOIN activity AS a ON a.commissioner = r.commissioner
    CROSS JOIN spread AS s
    WHERE r.rate > s.p25
),
total AS (
    SELECT count(*) AS flagged, concat(min(month), '-', max(month)) AS period FROM flagged
)
SELECT
    t.period,
    t.flagged,
    round(n.d95['value'], 3) AS national_dsr,
    round(n.d95['lower'], 3) AS national_lower95,
    round(n.d95['upper'], 3) AS national_upper95,
    s.commissioners,
    round(s.n_fold, 3) AS n_fold,
    round(s.p10, 3) AS p10,
    round(s.p25, 3) AS p25,
    round(s.p50, 3) AS p50,
    round(s.p90, 3) AS p90,
    CAST(round(coalesce(o.avoidable, 0)) AS BIGINT) AS reduction_opportunity
FROM national AS n CROSS JOIN spread AS s CROSS JOIN reduction AS o CROSS JOIN total AS t;
