-- Casemix-adjusted provider funnel: each provider's spine imaging appointments that the EBI rule "Low back pain imaging" flags, against the number national rates by age band and sex would give its own spine imaging patients (indirect standardisation, as PHE's calculate_ISRatio: exact 95% interval under 10 events, Byar's from 10), on the ratio funnel around 1 that FunnelPlotR draws for standardised ratios, widened for overdispersion between providers by its SHMI method when phi > 1; outlier says where it falls.
-- @chart funnel statistic=ratio x=expected y=ratio label=provider phi=phi tau2=tau2 method=SHMI lower=ratio_lower95 upper=ratio_upper95
-- @requires opa.sex
-- @dimensions provider
-- Parameters: $from_month, $to_month (yyyymm, inclusive). A provider with a high ratio flags more of its spine imaging than its patients' ages and sexes explain. Age bands are the ESP 2013 five-year bands; unknown age or sex is a band of its own, so the expected counts add up to the national flagged count. Provider codes with a '00' site suffix count under the trust. phi and tau2 are the dispersion ratio and between-provider variance across every provider (10% of providers at each end of the z-scores left out); below phi = 1 the limits are the exact Poisson ones.
WITH spine AS (
    SELECT
        CASE WHEN length(der_provider_code) = 5 AND right(der_provider_code, 2) = '00'
             THEN left(der_provider_code, 3) ELSE der_provider_code END AS provider,
        coalesce(esp_age_band(coalesce(age_at_start_of_episode_sus, der_age_at_cds_activity_date)),
                 'unknown') AS age_band,
        coalesce(CAST(sex AS VARCHAR), 'unknown') AS sex,
        ebi_lower_back_imaging(
            der_procedure_all, age_at_start_of_episode_sus, der_age_at_cds_activity_date,
            der_diagnosis_all, administrative_category) IS NOT NULL AS flagged
    FROM opa
    WHERE ebi_lower_back_imaging_included_by_der_procedure_all(der_procedure_all)
      AND sus_month(der_activity_month) BETWEEN $from_month AND $to_month
),
strata AS (
    SELECT provider, age_band, sex, count(*) AS spine_imaging,
           count(*) FILTER (WHERE flagged) AS flagged
    FROM spine GROUP BY provider, age_band, sex
),
national AS (
    SELECT age_band, sex, CAST(sum(flagged) AS DOUBLE) / sum(spine_imaging) AS rate
    FROM strata GROUP BY age_band, sex
),
providers AS (
    SELECT s.provider, sum(s.spine_imaging) AS spine_imaging,
           sum(s.flagged) AS observed, sum(s.spine_imaging * n.rate) AS expected,
           isr(s.flagged, s.spine_imaging, n.rate, 0.95) AS standardised
    FROM strata AS s JOIN national AS n ON n.age_band = s.age_band AND n.sex = s.sex
    GROUP BY s.provider
),
-- overdispersion reads plain columns: over fields of isr's struct, Ballista's executors could not
-- decode the plan (the aggregate's output is named anew, without its qualifier, when decoded).
dispersion AS (
    SELECT overdispersion(observed, expected, 'SHMI') AS d
    FROM providers
),
limits AS (
    SELECT p.provider, p.spine_imaging, p.standardised AS s, d.d['phi'] AS phi, d.d['tau2'] AS tau2,
           funnel_ratio_od(p.standardised['expected'], 0.95, 'SHMI', d.d['phi'], d.d['tau2']) AS funnel95,
           funnel_ratio_od(p.standardised['expected'], 0.998, 'SHMI', d.d['phi'], d.d['tau2']) AS funnel998
    FROM providers AS p CROSS JOIN dispersion AS d
)
SELECT
    provider,
    spine_imaging,
    CAST(s['observed'] AS BIGINT) AS flagged,
    round(s['expected'], 3) AS expected,
    round(s['ratio'], 4) AS ratio,
    round(s['lower'], 4) AS ratio_lower95,
    round(s['upper'], 4) AS ratio_upper95,
    round(phi, 4) AS phi,
    round(tau2, 8) AS tau2,
    round(funnel95['lower'], 4) AS funnel_lower95,
    round(funnel95['upper'], 4) AS funnel_upper95,
    round(funnel998['lower'], 4) AS funnel_lower998,
    round(funnel998['upper'], 4) AS funnel_upper998,
    CASE WHEN s['ratio'] IS NULL THEN NULL
         WHEN s['ratio'] > funnel998['upper'] THEN 'high 99.8%'
         WHEN s['ratio'] > funnel95['upper'] THEN 'high 95%'
         WHEN s['ratio'] < funnel998['lower'] THEN 'low 99.8%'
         WHEN s['ratio'] < funnel95['lower'] THEN 'low 95%'
         ELSE 'within' END AS outlier
FROM limits
ORDER BY expected DESC, provider;
