#!/usr/bin/env bash
# Runs the Python driver's own single-node integration tests
# (apache/cassandra-python-driver, tests/integration/standard) against one
# `ilion server`, as issue 19 measures CQL parity.
#
# Usage: tools/driver-suite/run.sh <driver source> [pytest args...]
#   <driver source>: a checkout (or bare git directory) of
#   apache/cassandra-python-driver; the tests are taken from its tag
#   $DRIVER_VERSION (3.29.2: later tests import a ccm module that the ccm
#   on PyPI does not have).
#   The tests are not in the driver's PyPI source distribution, so this
#   cannot run where GitHub is out of reach (CI here); see the README.
#
# What it does, in $WORK (default /tmp/ilion-driver-suite):
#   - a venv with the driver at the tests' version and the test tools;
#   - the tests, with the keyspaces they create at RF 2 and 3 made RF 1
#     (one node: QUORUM at RF 3 is Unavailable on Cassandra too);
#   - a fresh `ilion server` (release build) on 127.0.0.1:9042;
#   - pytest over the nine modules issue 19 names, each test bounded to
#     120 s, results in $WORK/results.xml and a summary line.
set -euo pipefail

SOURCE=${1:?usage: run.sh <driver source> [pytest args...]}
shift
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${WORK:-/tmp/ilion-driver-suite}
DRIVER_VERSION=3.29.2
MODULES=(test_types test_query test_prepared_statements test_query_paging test_metadata
    test_cluster test_concurrent test_row_factories test_udts)

mkdir -p "$WORK"
if ! "$WORK/venv/bin/pip" show "cassandra-driver" 2>/dev/null | grep -qx "Version: $DRIVER_VERSION"; then
    echo "driver-suite: creating the venv in $WORK/venv" >&2
    python3 -m venv "$WORK/venv"
    "$WORK/venv/bin/pip" install -q "cassandra-driver==$DRIVER_VERSION" pytest==8.3.4 \
        pytest-timeout==2.3.1 pytz==2024.2 pure-sasl==0.6.2 packaging==24.2 mock==5.1.0 \
        scales==1.0.9 PyYAML==6.0.2 ccm==3.1.5
fi

rm -rf "$WORK/src" "$WORK/data"
mkdir -p "$WORK/src"
git -C "$SOURCE" archive "$DRIVER_VERSION" tests | tar -x -C "$WORK/src"
sed -i "s/'replication_factor': '[23]'/'replication_factor': '1'/" \
    "$WORK/src/tests/integration/__init__.py"

echo "driver-suite: building ilion (release)" >&2
cargo build --release -q -p ilion --manifest-path "$ROOT/Cargo.toml"
"$ROOT/target/release/ilion" server --data-dir "$WORK/data" >"$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    if (exec 3<>/dev/tcp/127.0.0.1/9042) 2>/dev/null; then break; fi
    sleep 0.2
done
if ! kill -0 "$SERVER" 2>/dev/null; then
    echo "driver-suite: ilion server did not start:" >&2
    tail -5 "$WORK/server.log" >&2
    exit 1
fi

paths=()
for m in "${MODULES[@]}"; do paths+=("tests/integration/standard/$m.py"); done
cd "$WORK/src"
set +e
USE_CASS_EXTERNAL=1 CASSANDRA_VERSION=4.0.0 EVENT_LOOP_MANAGER=asyncore \
    "$WORK/venv/bin/python" -m pytest -q -p no:cacheprovider --timeout 120 \
    --junitxml "$WORK/results.xml" "${paths[@]}" "$@" | tee "$WORK/pytest.log" | grep -E "passed|failed" | tail -1
status=${PIPESTATUS[0]}
set -e
echo "driver-suite: results in $WORK/results.xml, log in $WORK/pytest.log, server log in $WORK/server.log" >&2
exit "$status"
