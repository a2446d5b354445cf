-- Provider funnel plot: each provider's flagged share of its spine imaging appointments (the rule's procedure codes alone) with its Wilson 95% interval, and the funnel limits at its number of spine imaging appointments around the national share (Wilson score method, 95% and 99.8%), as PHE/OHID draw them; outlier says where it falls.
-- @chart funnel x=spine_imaging y=share label=provider baseline=national_share lower=share_lower95 upper=share_upper95
-- @dimensions provider
-- Parameters: $from_month, $to_month (yyyymm, inclusive). Shares are proportions (0 to 1). Provider codes with a '00' site suffix count under the trust.
WITH spine AS (
    SELECT
        CASE WHEN length(der_provider_code) = 5 AND right(der_provider_code, 2) = '00'
             THEN left(der_provider_code, 3) ELSE der_provider_code END AS provider,
        ebi_lower_back_imaging(
            der_procedure_all, age_at_start_of_episode_sus, der_age_at_cds_activity_date,
            der_diagnosis_all, administrative_category) IS NOT NULL AS flagged
    FROM opa
    WHERE ebi_lower_back_imaging_included_by_der_procedure_all(der_procedure_all)
      AND sus_month(der_activity_month) BETWEEN $from_month AND $to_month
),
providers AS (
    SELECT provider, count(*) AS spine_imaging, count(*) FILTER (WHERE flagged) AS flagged
    FROM spine GROUP BY provider
),
national AS (
    SELECT CAST(sum(flagged) AS DOUBLE) / sum(spine_imaging) AS share FROM providers
),
limits AS (
    SELECT p.provider, p.spine_imaging, p.flagged, n.share AS national_share,
           wilson(p.flagged, p.spine_imaging, 0.95) AS interval95,
           funnel_proportion(n.share, p.spine_imaging, 0.95) AS funnel95,
           funnel_proportion(n.share, p.spine_imaging, 0.998) AS funnel998
    FROM providers AS p CROSS JOIN national AS n
)
SELECT
    provider,
    spine_imaging,
    flagged,
    round(interval95['value'], 5) AS share,
    round(interval95['lower'], 5) AS share_lower95,
    round(interval95['upper'], 5) AS share_upper95,
    round(national_share, 5) AS national_share,
    round(funnel95['lower'], 5) AS funnel_lower95,
    round(funnel95['upper'], 5) AS funnel_upper95,
    round(funnel998['lower'], 5) AS funnel_lower998,
    round(funnel998['upper'], 5) AS funnel_upper998,
    CASE WHEN interval95['value'] > funnel998['upper'] THEN 'high 99.8%'
         WHEN interval95['value'] > funnel95['upper'] THEN 'high 95%'
         WHEN interval95['value'] < funnel998['lower'] THEN 'low 99.8%'
         WHEN interval95['value'] < funnel95['lower'] THEN 'low 95%'
         ELSE 'within' END AS outlier
FROM limits
ORDER BY spine_imaging DESC, provider;
