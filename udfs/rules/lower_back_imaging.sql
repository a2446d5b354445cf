-- EBI rule: Low back pain imaging (Best Practice Guidance; published January 2020, last reviewed
-- September 2024). Each section below is pasted from the guidance page's "Coding" section as
-- published, typographic quotes and the em-dash heading included; ebiq reads them as the T-SQL
-- they stand for. Do not edit the SQL to fix a figure: a published change is a new paste.
-- @title Low back pain imaging
-- @version last reviewed September 2024
-- @effective published January 2020
-- @section code_script
WHEN (opa.Der_Procedure_All like '%U05[45]%’ 
OR ( (opa.Der_Procedure_All like '%U13[2356]%’ 
OR opa.Der_Procedure_All like '%U21[1267]%’) 
AND (opa.Der_Procedure_All like '%Z665%’ 
OR opa.Der_Procedure_All like '%O162%’) ) ) 
AND ISNULL(opa.Age_at_Start_of_Episode_SUS,opa.Der_Age_at_CDS_Activity_Date) between 19 AND 120 
THEN '2S_lower_back_imaging'

-- @section exclusions
apcs.der_diagnosis_all not like '%C[0-9][0-9]%' and 
apcs.der_diagnosis_all not like '%D0%' and 
apcs.der_diagnosis_all not like '%D3[789]%' and
apcs.der_diagnosis_all not like '%D4[012345678]%’

-- This code captures code in the ranges C00-C99, D00-D09 and D37-D48.
-- Age range: the codes use the following age ranges 0-18 for children and 19-120
-- for adults.

— Private Appointment Exclusion
AND apcs.Administrative_Category<>’02’
