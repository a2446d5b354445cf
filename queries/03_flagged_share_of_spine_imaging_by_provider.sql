-- Flagged share of spine imaging by provider: of the outpatient appointments with spine imaging by the rule's procedure codes (its LIKE clause alone), the share the full rule flags; the rate analysts compare providers on.
-- Parameters: $from_month, $to_month (yyyymm, inclusive); a record whose month is not a valid yyyymm (202413) is never counted.
SELECT
    provider,
    count(*) AS spine_imaging,
    count(flag) AS flagged,
    round(100.0 * count(flag) / count(*), 1) AS flagged_percent
FROM (
    SELECT
        CASE WHEN length(der_provider_code) = 5 AND right(der_provider_code, 2) = '00'
             THEN left(der_provider_code, 3) ELSE der_provider_code END AS provider,
        ebi_lower_back_imaging(
            der_procedure_all, age_at_start_of_episode_sus, der_age_at_cds_activity_date,
            der_diagnosis_all, administrative_category) AS flag
    FROM opa
    WHERE ebi_lower_back_imaging_included_by_der_procedure_all(der_procedure_all)
      AND sus_month(der_activity_month) BETWEEN $from_month AND $to_month
) AS spine
GROUP BY provider
ORDER BY flagged_percent DESC, provider;
