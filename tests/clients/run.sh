#!/usr/bin/env bash
# Real clients that no one on the project wrote, against `ebiq serve` over data-samples/: psql
# (Debian's postgresql-client), the Python clients (PyPI, in a virtualenv this script makes), JDBC
# (Debian's libpostgresql-jdbc-java on the JDK) and R (Debian's r-cran-dbi, -rpostgresql, -dbplyr).
# Every answer is compared with the report's CSVs or `ebiq sql --format csv` for the same SQL.
# The server listens on 127.0.0.1 only, on a port the system picks, and is stopped on exit.
#
#   tests/clients/run.sh PATH_TO_EBIQ        (.ci/run passes the debug build the tests used)
set -euo pipefail
cd "$(dirname "$0")/../.."
EBIQ="$(realpath "${1:?usage: tests/clients/run.sh PATH_TO_EBIQ}")"
VENV="${EBIQ_CLIENTS_VENV:-$HOME/.cache/ebiq-clients-venv}"
work="$(mktemp -d)"
server_pid=""
tls_pid=""
cleanup() {
  for pid in $server_pid $tls_pid; do kill "$pid" 2> /dev/null || true; wait "$pid" 2> /dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/clients/requirements.txt

"$EBIQ" report --quiet --format csv --out "$work/report" > /dev/null 2> "$work/report.log"
"$EBIQ" serve --quiet --listen 127.0.0.1:0 2> "$work/serve.log" &
server_pid=$!
port=""
for _ in $(seq 1 240); do # at most two minutes
  port="$(sed -n 's/^ebiq serve: listening on 127\.0\.0\.1:\([0-9]*\),.*/\1/p' "$work/serve.log")"
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2> /dev/null || break
  sleep 0.5
done
if [ -z "$port" ]; then
  echo "ebiq serve did not start:" >&2
  cat "$work/serve.log" >&2
  exit 1
fi
conn="host=127.0.0.1 port=$port dbname=ebiq user=analyst connect_timeout=10"
export PGCONNECT_TIMEOUT=10

passed=0
failed=0
check() { # NAME FUNCTION: runs the check, at most a minute
  local name="$1"
  if timeout 60 bash -c "set -euo pipefail; $2" > "$work/check.log" 2>&1; then
    passed=$((passed + 1))
    echo "ok   $name"
  else
    failed=$((failed + 1))
    echo "FAIL $name"
    sed 's/^/     /' "$work/check.log"
  fi
}

# The main report's SQL with its month parameters written in, through psql and through ebiq sql.
main_sql="$(sed "s/\$from_month/'000000'/; s/\$to_month/'999999'/" queries/01_flagged_by_provider_month.sql)"
psql_main() {
  psql "$conn" --csv -c "$main_sql" > "$work/psql-main.csv"
  "$EBIQ" sql --quiet --format csv "$main_sql" > "$work/ebiq-main.csv"
  cmp "$work/psql-main.csv" "$work/ebiq-main.csv"
}
psql_view() {
  psql "$conn" --csv -c "SELECT * FROM reports.flagged_by_provider_month" > "$work/psql-view.csv"
  cmp "$work/psql-view.csv" "$work/report/01_flagged_by_provider_month.csv"
}
psql_statistic() {
  psql "$conn" --csv -c "SELECT * FROM reports.standardised_rates_by_commissioner" > "$work/psql-dsr.csv"
  cmp "$work/psql-dsr.csv" "$work/report/06_standardised_rates_by_commissioner.csv"
}
psql_tables() { psql "$conn" -c '\dt' | grep -E '^ public +\| opa +\| table'; }
psql_describe() { psql "$conn" -c '\d opa' | grep -E '^ der_procedure_all +\| text'; }
psql_copy() {
  psql "$conn" -c "\\copy (SELECT * FROM reports.flagged_by_provider_month) TO '$work/copy.csv' CSV HEADER"
  cmp "$work/copy.csv" "$work/report/01_flagged_by_provider_month.csv"
}
psql_refuses_copy_to_a_file() {
  ! psql "$conn" -v ON_ERROR_STOP=1 -c "COPY opa TO '$work/leak.csv'" && [ ! -e "$work/leak.csv" ]
}
export conn work EBIQ main_sql
export -f psql_main psql_view psql_statistic psql_tables psql_describe psql_copy psql_refuses_copy_to_a_file
check "psql: the main report's SQL equals ebiq sql's" psql_main
check "psql: reports.flagged_by_provider_month equals the report's CSV" psql_view
check "psql: reports.standardised_rates_by_commissioner (DSR) equals the report's CSV" psql_statistic
check "psql: \\dt lists opa as a table" psql_tables
check "psql: \\d opa describes its columns" psql_describe
check "psql: \\copy of a report view equals the report's CSV" psql_copy
check "psql: COPY to a server file is refused" psql_refuses_copy_to_a_file
echo "psql: $passed passed, $failed failed"

python_status=0
timeout 600 "$VENV/bin/python" -W ignore tests/clients/python_clients.py "$port" "$EBIQ" "$work/report" || python_status=$?

# JDBC (Debian's libpostgresql-jdbc-java), as DBeaver and Java tools use it.
jdbc_status=0
rxh="$("$EBIQ" sql --quiet --format csv "SELECT count(*) FROM opa WHERE der_provider_code = 'RXH'" | tail -n 1)"
timeout 300 java -cp /usr/share/java/postgresql.jar tests/clients/JdbcClient.java "$port" "$rxh" "$work/report" || jdbc_status=$?

# R: DBI with RPostgreSQL, and dbplyr (Debian's r-cran-* packages).
r_status=0
timeout 300 Rscript tests/clients/r_clients.R "$port" "$work/report" "$rxh" || r_status=$?

# ODBC: psqlODBC through unixODBC's isql (Debian's odbc-postgresql, unixodbc); `help` and `help
# opa` make the SQLTables and SQLColumns catalogue calls.
mkdir -p "$work/odbc"
printf '[PostgreSQL Unicode]\nDriver = %s\n' "$(find /usr/lib -name psqlodbcw.so -print -quit)" > "$work/odbc/odbcinst.ini"
printf '[ebiq]\nDriver = PostgreSQL Unicode\nServername = 127.0.0.1\nPort = %s\nDatabase = ebiq\nUsername = analyst\n' "$port" > "$work/odbc/odbc.ini"
export ODBCSYSINI="$work/odbc" ODBCINI="$work/odbc/odbc.ini" rxh
odbc_passed=$passed
odbc_failed=$failed
odbc_query() { [ "$(printf "SELECT count(*) FROM opa WHERE der_provider_code = 'RXH'\n" | isql -b -d, ebiq)" = "$rxh" ]; }
odbc_view() { # VIEW REPORT_CSV: isql's rows (no header) equal the CSV's
  printf 'SELECT * FROM reports.%s\n' "$1" | isql -b -d, ebiq > "$work/odbc-$1.csv"
  tail -n +2 "$work/report/$2.csv" | cmp - "$work/odbc-$1.csv"
}
odbc_main() { odbc_view flagged_by_provider_month 01_flagged_by_provider_month; }
odbc_statistic() { odbc_view standardised_rates_by_commissioner 06_standardised_rates_by_commissioner; }
odbc_tables() { printf 'help\n' | isql -b -d, ebiq | grep -E '^ebiq,public,opa,TABLE'; }
odbc_columns() { printf 'help opa\n' | isql -b -d, ebiq | grep -E '^ebiq,public,opa,der_procedure_all,'; }
export -f odbc_query odbc_view odbc_main odbc_statistic odbc_tables odbc_columns
check "odbc: isql runs a query" odbc_query
check "odbc: the main report view equals the report's CSV" odbc_main
check "odbc: the DSR view equals the report's CSV" odbc_statistic
check "odbc: SQLTables lists opa" odbc_tables
check "odbc: SQLColumns describes opa" odbc_columns
echo "odbc: $((passed - odbc_passed)) passed, $((failed - odbc_failed)) failed"

# Npgsql (the driver behind Power BI's and Excel's PostgreSQL connector, which cannot run here):
# its start-up batch, replayed as it sends it (one simple query), then its type list checked.
npgsql_passed=$passed
npgsql_failed=$failed
npgsql_batch() { psql "$conn" -v ON_ERROR_STOP=1 -c "$(cat tests/clients/npgsql_startup.sql)"; }
npgsql_types() {
  awk 'BEGIN { RS = ";\n\n" } NR == 2' tests/clients/npgsql_startup.sql > "$work/npgsql-types.sql"
  psql "$conn" --csv -v ON_ERROR_STOP=1 -f "$work/npgsql-types.sql" > "$work/npgsql-types.csv"
  grep -qx 'pg_catalog,23,int4,b,f,' "$work/npgsql-types.csv"
  grep -qx 'pg_catalog,25,text,b,f,' "$work/npgsql-types.csv"
  grep -qx 'pg_catalog,1007,_int4,a,f,23' "$work/npgsql-types.csv"
}
export -f npgsql_batch npgsql_types
check "npgsql: the start-up batch runs" npgsql_batch
check "npgsql: base types and their arrays load" npgsql_types
echo "npgsql: $((passed - npgsql_passed)) passed, $((failed - npgsql_failed)) failed"

# A server for a team: logins from a users file written by --add-user, and TLS with a
# certificate from a throwaway certificate authority, as psql checks it with sslmode=verify-full.
tls_passed=$passed
tls_failed=$failed
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=ebiq test CA" \
  -keyout "$work/ca.key" -out "$work/ca.pem" 2> /dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$work/server.key" -out "$work/server.csr" 2> /dev/null
printf 'subjectAltName = IP:127.0.0.1\n' > "$work/san.ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
  -days 2 -extfile "$work/san.ext" -out "$work/server.pem" 2> /dev/null
printf 'team secret\nteam secret\n' | "$EBIQ" serve --add-user ana --role analyst --users "$work/users" 2> /dev/null
"$EBIQ" serve --quiet --listen 127.0.0.1:0 --users "$work/users" \
  --tls-cert "$work/server.pem" --tls-key "$work/server.key" 2> "$work/tls.log" &
tls_pid=$!
tls_port=""
for _ in $(seq 1 240); do
  tls_port="$(sed -n 's/^ebiq serve: listening on 127\.0\.0\.1:\([0-9]*\),.*/\1/p' "$work/tls.log")"
  [ -n "$tls_port" ] && break
  kill -0 "$tls_pid" 2> /dev/null || break
  sleep 0.5
done
tls_conn="host=127.0.0.1 port=$tls_port dbname=ebiq user=ana connect_timeout=10 sslrootcert=$work/ca.pem"
export tls_conn
tls_verified() { [ "$(PGPASSWORD='team secret' psql "$tls_conn sslmode=verify-full" -tAc 'SELECT 1')" = 1 ]; }
tls_required() { ! PGPASSWORD='team secret' psql "$tls_conn sslmode=disable" -c 'SELECT 1' 2> "$work/plain.err" && grep -q 'only TLS connections' "$work/plain.err"; }
tls_wrong_password() { ! PGPASSWORD='wrong' psql "$tls_conn sslmode=verify-full" -c 'SELECT 1' 2> "$work/wrong.err" && grep -q 'password authentication failed for user "ana"' "$work/wrong.err"; }
export -f tls_verified tls_required tls_wrong_password
check "tls: psql with sslmode=verify-full logs in with a password" tls_verified
check "tls: a connection without TLS is refused" tls_required
check "tls: a wrong password is refused (28P01's message)" tls_wrong_password
echo "tls: $((passed - tls_passed)) passed, $((failed - tls_failed)) failed"

[ "$failed" -eq 0 ] && [ "$python_status" -eq 0 ] && [ "$jdbc_status" -eq 0 ] && [ "$r_status" -eq 0 ]
