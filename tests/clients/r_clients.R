# R against a running `ebiq serve`, as analysts use it: DBI with RPostgreSQL, and dbplyr building
# SQL from dplyr verbs. Each answer is compared with the `ebiq` binary's own.
#
#   Rscript tests/clients/r_clients.R PORT REPORT_CSV_DIR EXPECTED_RXH_COUNT
#
# Run by tests/clients/run.sh; prints "r: N passed, N failed" and exits 1 on any failure.

args <- commandArgs(trailingOnly = TRUE)
port <- as.integer(args[1])
report_dir <- args[2]
rxh <- as.numeric(args[3])

suppressPackageStartupMessages({
  library(DBI)
  library(RPostgreSQL)
  library(dplyr)
  library(dbplyr)
})

passed <- 0
failed <- 0
check <- function(name, test) {
  ok <- tryCatch({
    test()
    TRUE
  }, error = function(e) {
    cat("FAIL r:", name, ":", conditionMessage(e), "\n")
    FALSE
  })
  if (ok) {
    passed <<- passed + 1
    cat("ok   r:", name, "\n")
  } else {
    failed <<- failed + 1
  }
}

con <- dbConnect(PostgreSQL(), host = "127.0.0.1", port = port, dbname = "ebiq",
                 user = "analyst")

check("dbListTables lists opa", function() {
  tables <- dbListTables(con)
  if (!("opa" %in% tables)) stop(paste("tables:", paste(tables, collapse = ", ")))
})

# A report view read with dbGetQuery against the report's CSV: text columns identical, numbers
# equal (R prints a double with 15 significant digits, the CSV with the shortest exact form).
same_as_report <- function(view, csv_name) {
  got <- dbGetQuery(con, paste0("SELECT * FROM reports.", view))
  want <- read.csv(file.path(report_dir, paste0(csv_name, ".csv")), colClasses = "character")
  if (!identical(names(got), names(want))) stop(paste("columns:", paste(names(got), collapse = ",")))
  if (nrow(got) != nrow(want) || nrow(got) == 0) stop(paste("rows:", nrow(got), "vs", nrow(want)))
  for (column in names(want)) {
    same <- if (is.numeric(got[[column]])) {
      isTRUE(all.equal(got[[column]], as.numeric(want[[column]]), tolerance = 1e-12))
    } else {
      identical(as.character(got[[column]]), want[[column]])
    }
    if (!same) stop(paste("column differs:", column))
  }
}

check("dbGetQuery of the main report view equals the report's CSV", function() {
  same_as_report("flagged_by_provider_month", "01_flagged_by_provider_month")
})

check("dbGetQuery of the DSR view equals the report's CSV", function() {
  same_as_report("standardised_rates_by_commissioner", "06_standardised_rates_by_commissioner")
})

check("dbplyr: tbl(con, 'opa') |> filter() |> count() |> collect()", function() {
  counted <- tbl(con, "opa") |>
    filter(der_provider_code == "RXH") |>
    count() |>
    collect()
  if (as.numeric(counted$n) != rxh) stop(paste(counted$n, "!=", rxh))
})

invisible(dbDisconnect(con))
cat("r:", passed, "passed,", failed, "failed\n")
quit(status = if (failed == 0) 0 else 1)
