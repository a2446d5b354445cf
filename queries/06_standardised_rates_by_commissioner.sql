-- Standardised rates by commissioner: appointments the EBI rule "Low back pain imaging" flags per 100,000 residents, crude (Byar's 95% interval) and age/sex standardised to the 2013 European Standard Population (Dobson 95% interval), and whether each lies above or below the national standardised rate at 95% and 99.8%.
-- @chart interval label=commissioner y=dsr lower=dsr_lower95 upper=dsr_upper95 reference=national_dsr units=per_100,000_residents
-- @requires population, opa.sex
-- @dimensions commissioner
-- Parameters: $from_month, $to_month (yyyymm, inclusive). Rates are over the whole period queried (not annualised), per resident of the latest population year no later than the period's end. Activity with unknown age or sex (0, 9) counts in the crude rate but not in the standardised one. A commissioner with no population rows is left out; a standardised rate of fewer than 10 events is NULL, as PHE publishes it.
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
    SELECT dsr(events, population, standard, 0.95, 100000)['value'] AS rate
    FROM (SELECT sex, age_band, sum(events) AS events, sum(population) AS population,
                 max(standard) AS standard
          FROM bands GROUP BY sex, age_band) AS england
),
activity AS (
    SELECT commissioner, count(*) AS flagged FROM flagged GROUP BY commissioner
),
rates AS (
    SELECT commissioner, sum(population) AS population,
           dsr(events, population, standard, 0.95, 100000) AS d95,
           dsr(events, population, standard, 0.998, 100000) AS d998
    FROM bands GROUP BY commissioner
)
SELECT
    r.commissioner,
    coalesce(a.flagged, 0) AS flagged,
    r.population,
    round(100000.0 * coalesce(a.flagged, 0) / r.population, 3) AS crude_rate,
    round(100000.0 * byar(coalesce(a.flagged, 0), 0.95)['lower'] / r.population, 3) AS crude_lower95,
    round(100000.0 * byar(coalesce(a.flagged, 0), 0.95)['upper'] / r.population, 3) AS crude_upper95,
    round(r.d95['value'], 3) AS dsr,
    round(r.d95['lower'], 3) AS dsr_lower95,
    round(r.d95['upper'], 3) AS dsr_upper95,
    round(n.rate, 3) AS national_dsr,
    CASE WHEN r.d95['value'] IS NULL THEN NULL
         WHEN r.d95['lower'] > n.rate THEN 'higher'
         WHEN r.d95['upper'] < n.rate THEN 'lower'
         ELSE 'similar' END AS compared_95,
    CASE WHEN r.d998['value'] IS NULL THEN NULL
         WHEN r.d998['lower'] > n.rate THEN 'higher'
         WHEN r.d998['upper'] < n.rate THEN 'lower'
         ELSE 'similar' END AS compared_998
FROM rates AS r
CROSS JOIN national AS n
LEFT JOIN activity AS a ON a.commissioner = r.commissioner
ORDER BY dsr DESC NULLS LAST, r.commissioner;
