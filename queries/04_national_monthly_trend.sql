-- National monthly trend: outpatient appointments, spine imaging by the rule's procedure codes, and appointments the EBI rule "Low back pain imaging" flags, per month for England.
-- Parameters: $from_month, $to_month (yyyymm, inclusive); a record whose month is not a valid yyyymm (202413) is never counted.
SELECT
    der_activity_month AS month,
    count(*) AS appointments,
    count(*) FILTER (WHERE ebi_lower_back_imaging_included_by_der_procedure_all(der_procedure_all)) AS spine_imaging,
    count(*) FILTER (WHERE ebi_lower_back_imaging(
          der_procedure_all, age_at_start_of_episode_sus, der_age_at_cds_activity_date,
          der_diagnosis_all, administrative_category) IS NOT NULL) AS flagged
FROM opa
WHERE sus_month(der_activity_month) BETWEEN $from_month AND $to_month
GROUP BY 1
ORDER BY 1;
