#!/usr/bin/env bash
# By hand (not in CI: it installs moto, deltalake and pyarrow from PyPI into its own virtualenv):
# a Delta table written by delta-rs's Python writer to a mock S3 server (moto) in two commits, read
# by ebiq at each version over s3:// with the same AWS_* variables as Parquet files.
# Usage: tests/external/delta_over_s3.sh [path/to/ebiq]
set -euo pipefail
cd "$(dirname "$0")/../.."
ebiq="${1:-${CARGO_TARGET_DIR:-$HOME/.cache/ebiq-target}/debug/ebiq}"
venv="${TMPDIR:-/tmp}/ebiq-delta-s3-venv"
[ -x "$venv/bin/moto_server" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q "moto[server]" boto3 deltalake pyarrow; }
port=5055
"$venv/bin/moto_server" -p "$port" > /dev/null 2>&1 &
server=$!
trap 'kill $server' EXIT
sleep 3
export AWS_ENDPOINT="http://127.0.0.1:$port" AWS_ALLOW_HTTP=true AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x AWS_REGION=us-east-1
"$venv/bin/python" - <<'PY'
import os, boto3, pyarrow.compute as pc, pyarrow.dataset as ds
from deltalake import write_deltalake
endpoint = os.environ["AWS_ENDPOINT"]
boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="sus")
table = ds.dataset("data-samples/opa").to_table()
month = table["Der_Activity_Month"]
opts = {"AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}
write_deltalake("s3://sus/opa", table.filter(pc.less_equal(month, "202403")), storage_options=opts)
write_deltalake("s3://sus/opa", table.filter(pc.greater(month, "202403")), mode="append", storage_options=opts)
PY
for version in 0 1; do
  got=$("$ebiq" sql --data s3://sus/opa --as-of "$version" --format csv \
        "SELECT count(*) AS n, max(der_activity_month) AS last FROM opa" | tail -1)
  echo "version $version: $got"
done | tee /dev/stderr | diff - <(printf 'version 0: 30000,202403\nversion 1: 60000,202503\n') \
  && echo "delta over s3: both versions as written"
