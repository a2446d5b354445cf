-- National monthly trend as an SPC (XmR) chart, NHS Making Data Count style: appointments the EBI rule "Low back pain imaging" flags each month, with the mean, lower and upper process limits, and special cause variation marked 'improvement' or 'concern' (fewer flagged appointments is better); variation_icon is Making Data Count's icon for the series, from its last month.
-- @chart spc x=month y=flagged mean=mean lower=lower_process_limit upper=upper_process_limit cause=special_cause variation=variation_icon
-- @dimensions month
-- Parameters: $from_month, $to_month (yyyymm, inclusive). The limits are set from every month shown (no baseline period or rebase).
WITH monthly AS (
    SELECT der_activity_month AS month,
           count(*) FILTER (WHERE ebi_lower_back_imaging(
               der_procedure_all, age_at_start_of_episode_sus, der_age_at_cds_activity_date,
               der_diagnosis_all, administrative_category) IS NOT NULL) AS flagged
    FROM opa
    WHERE sus_month(der_activity_month) BETWEEN $from_month AND $to_month
    GROUP BY 1
),
chart AS (
    SELECT month, flagged, xmr(flagged, 'decrease') OVER (ORDER BY month) AS spc
    FROM monthly
)
SELECT
    month,
    flagged,
    round(spc['mean'], 3) AS mean,
    round(spc['lpl'], 3) AS lower_process_limit,
    round(spc['upl'], 3) AS upper_process_limit,
    spc['special_cause'] AS special_cause,
    spc['variation_icon'] AS variation_icon
FROM chart
ORDER BY month;
