-- An admitted-care rule on spell-level columns, written as the programme writes its APCS rules
-- (an illustration of the format, not a published rule; see the README, "Writing a rule file").
-- @title Knee arthroscopy (example of an admitted-care rule)
-- @version example 1
-- @effective 2025-04-01
-- @section code_script
WHEN (Der.Spell_Dominant_Procedure like 'W85[0-9]%'
  AND APCS.Admission_Method like '1%'
  AND ISNULL(APCS.Age_At_Start_of_Spell_SUS, APCS.Der_Age_at_CDS_Activity_Date) BETWEEN 19 AND 120)
THEN '1K_knee_arthroscopy'
-- @section exclusions
-- Injury exclusion: a knee injury on the spell, or no diagnosis recorded at all
(apcs.der_diagnosis_all not like '%S83%' or apcs.der_diagnosis_all IS NULL)
