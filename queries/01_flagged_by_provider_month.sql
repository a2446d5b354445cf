-- Flagged activity by provider and month: outpatient appointments the EBI rule "Low back pain imaging" flags, exactly as the published rule counts them (no extra filter).
-- @chart line x=month y=flagged series=provider top=8
-- Provider: Der_Provider_Code with a trailing '00' site suffix removed (RXH00 counts as RXH).
-- Parameters: $from_month, $to_month (yyyymm, inclusive); a record whose month is not a valid yyyymm (202413) is never counted.
SELECT
    CASE WHEN length(der_provider_code) = 5 AND right(der_provider_code, 2) = '00'
         THEN left(der_provider_code, 3) ELSE der_provider_code END AS provider,
    der_activity_month AS month,
    count(*) AS flagged
FROM opa
WHERE ebi_lower_back_imaging(
          der_procedure_all, age_at_start_of_episode_sus, der_age_at_cds_activity_date,
          der_diagnosis_all, administrative_category) IS NOT NULL
  AND sus_month(der_activity_month) BETWEEN $from_month AND $to_month
GROUP BY 1, 2
ORDER BY 1, 2;
