#!/usr/bin/env bash
# bench/run.sh — tally side by side with ClickHouse 18.16 on the same generated data, in one
# run, reported as ratios (DESIGN.md "Peers"). Benchmarks are never tests: nothing here fails
# because of a number; differing answers print WARNING lines.
#
#   bash bench/run.sh [--scale N] [--runs N] [--conns N] [--work DIR] [--keep]
#   (or SCALE=, RUNS=, CONNS=, BENCH_WORK= in the environment; `make bench` runs it)
#
# Steps: build the generator and the load client (cc -O2) → generate ~4M events × scale →
# start ClickHouse on loopback from a scratch dir, create the table, bulk-insert the TSV,
# OPTIMIZE FINAL → start tally on a scratch data dir, send the NDJSON over HTTP in batches of
# 1000 on a few connections, wait until all of it is queryable → run each query on both, one
# warm-up and RUNS timed runs, compare answers; person timelines and realtime → read VmHWM of
# both servers → stop both → du both data dirs → restart each (tally: then the timelines once
# more, cold) → print the table and write bench/results.md. See bench/README.md.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
SCALE="${SCALE:-1}"
RUNS="${RUNS:-7}"
CONNS="${CONNS:-4}"
BATCH=1000
WORK="${BENCH_WORK:-}"
KEEP=0
CMDLINE="bash bench/run.sh $*"
[ $# -eq 0 ] && CMDLINE="make bench"
while [ $# -gt 0 ]; do
    case "$1" in
    --scale) SCALE="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --conns) CONNS="$2"; shift 2 ;;
    --work) WORK="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [ "$CMDLINE" = "make bench" ]; then # say which environment knobs were turned
    [ "$CONNS" != 4 ] && CMDLINE="CONNS=$CONNS $CMDLINE"
    [ "$RUNS" != 7 ] && CMDLINE="RUNS=$RUNS $CMDLINE"
    [ "$SCALE" != 1 ] && CMDLINE="SCALE=$SCALE $CMDLINE"
fi

say() { printf '\n== %s\n' "$*" >&2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }

# ---- scratch space and cleanup ------------------------------------------------------------
if [ -z "$WORK" ]; then
    WORK="$(mktemp -d /tmp/tally-bench.XXXXXX)"
else
    mkdir -p "$WORK"
fi
CH_PID=""
TALLY_PID=""
stop_pid() { # pid name — SIGTERM, wait up to 60 s, then SIGKILL
    local pid="$1"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 600); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "run.sh: $2 did not stop in 60 s, killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    stop_pid "$TALLY_PID" tally
    stop_pid "$CH_PID" clickhouse-server
    if [ "$KEEP" = 1 ]; then
        echo "run.sh: scratch kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
STATS="$WORK/stats.env"
: >"$STATS"
stat() { echo "$1=$2" >>"$STATS"; }

# ---- prerequisites ------------------------------------------------------------------------
if ! command -v clickhouse-server >/dev/null || ! command -v clickhouse-client >/dev/null; then
    say "installing ClickHouse (Debian's clickhouse-server 18.16)"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq || true
    $SUDO apt-get install -y clickhouse-server clickhouse-client
fi
# Debian's python3 first: a pyenv shim costs over a second per start, which would be timed
PY=/usr/bin/python3
[ -x "$PY" ] || PY="$(command -v python3)" || { echo "run.sh: python3 is needed" >&2; exit 1; }
# `make bench` has just built it; run directly, bring it up to date (make is incremental)
make -s build/tally >&2 || { [ -x build/tally ] &&
    echo "run.sh: WARNING: the build failed; measuring the existing build/tally" >&2; } || exit 1
cc -O2 -o "$WORK/gen" bench/gen.c -lm
cc -O2 -pthread -o "$WORK/load" bench/load.c

# four free loopback ports: ClickHouse HTTP, native, interserver; tally
read -r CH_HTTP CH_TCP CH_INTER TALLY_PORT < <("$PY" -c '
import socket
ss = [socket.socket() for _ in range(4)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])
for s in ss: s.close()')

stat date "$(date -u +%Y-%m-%dT%H:%MZ)"
stat machine "\"$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB RAM", $2/1048576}' /proc/meminfo), $(uname -sr)\""
stat commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
# other work on the machine skews every number: say how busy it was
stat load_start "\"$(cut -d' ' -f1-3 /proc/loadavg)\""
awk '$1 > 0.5 { exit 1 }' /proc/loadavg ||
    echo "run.sh: WARNING: the machine is busy (load average $(cut -d' ' -f1-3 /proc/loadavg)); numbers will be noisy" >&2

# ---- data ---------------------------------------------------------------------------------
say "generating data (scale $SCALE)"
T=$(now)
mkdir -p "$WORK/data"
"$WORK/gen" --scale "$SCALE" --out "$WORK/data"
stat gen_s "$(elapsed "$T")"
cat "$WORK/data/meta.txt" >>"$STATS"
META="$WORK/data/meta.txt"
UNIQUE=$(awk -F= '$1 == "events_unique" { print $2 }' "$META")
SENT=$(awk -F= '$1 == "events_sent" { print $2 }' "$META")
ls -l "$WORK/data" >&2

# ---- ClickHouse ---------------------------------------------------------------------------
say "starting ClickHouse on 127.0.0.1:$CH_HTTP (http) / $CH_TCP (native)"
CHD="$WORK/clickhouse"
mkdir -p "$CHD/data" "$CHD/log" "$CHD/tmp" "$CHD/user_files" "$CHD/format_schemas"
cp /etc/clickhouse-server/users.xml "$CHD/users.xml"
# The packaged config with every path moved into the scratch dir, loopback only, our ports,
# and parts replaced by a merge deleted at once (so that du measures live data only).
sed -e "s#/var/lib/clickhouse/tmp/#$CHD/tmp/#g" \
    -e "s#/var/lib/clickhouse/user_files/#$CHD/user_files/#g" \
    -e "s#/var/lib/clickhouse/format_schemas/#$CHD/format_schemas/#g" \
    -e "s#/var/lib/clickhouse/#$CHD/data/#g" \
    -e "s#/var/log/clickhouse-server/#$CHD/log/#g" \
    -e "s#<http_port>[0-9]*</http_port>#<http_port>$CH_HTTP</http_port>#" \
    -e "s#<tcp_port>[0-9]*</tcp_port>#<tcp_port>$CH_TCP</tcp_port>#" \
    -e "s#<interserver_http_port>[0-9]*</interserver_http_port>#<interserver_http_port>$CH_INTER</interserver_http_port>#" \
    -e "s#<max_connections>#<listen_host>127.0.0.1</listen_host><merge_tree><old_parts_lifetime>1</old_parts_lifetime><cleanup_delay_period>1</cleanup_delay_period></merge_tree>\n    <max_connections>#" \
    /etc/clickhouse-server/config.xml >"$CHD/config.xml"
start_ch() { # starts ClickHouse and waits until it answers
    (cd "$CHD" && exec clickhouse-server --config-file="$CHD/config.xml" >>"$CHD/stdout.log" 2>&1) &
    CH_PID=$!
    for i in $(seq 600); do
        curl -sf "http://127.0.0.1:$CH_HTTP/?query=SELECT%201" >/dev/null 2>&1 && return 0
        kill -0 "$CH_PID" 2>/dev/null || { cat "$CHD/stdout.log" "$CHD/log/"*err* >&2; exit 1; }
        sleep 0.1
    done
    echo "run.sh: ClickHouse did not answer in 60 s" >&2
    exit 1
}
start_ch
CH="clickhouse-client --host 127.0.0.1 --port $CH_TCP"
clickhouse-client --version >&2 || true

# The best plain schema 18.16 offers for these queries: the person as UInt64 (precomputed by
# the generator), sorted by (event, person, time), monthly partitions. LowCardinality is
# experimental in 18.16 and measured no faster here, so strings stay String.
$CH --query "CREATE TABLE events (
    event String, person UInt64, time DateTime, event_id String, anonymous_id String,
    user_id String, session_id String, platform String, app_version String, country String,
    url String, referrer String, price Float64, category String
) ENGINE = MergeTree PARTITION BY toYYYYMM(time) ORDER BY (event, person, time)"

say "ClickHouse: inserting $UNIQUE rows (TSV, duplicates removed, persons resolved)"
T=$(now)
$CH --query "INSERT INTO events FORMAT TSV" <"$WORK/data/events.tsv"
CH_INSERT_S=$(elapsed "$T")
T2=$(now)
$CH --query "OPTIMIZE TABLE events FINAL"
CH_OPT_S=$(elapsed "$T2")
CH_TOTAL_S=$(elapsed "$T")
CH_ROWS=$($CH --query "SELECT count() FROM events")
stat ch_rows "$CH_ROWS"
stat ch_insert_s "$CH_INSERT_S"
stat ch_optimize_s "$CH_OPT_S"
stat ch_ingest_total_s "$CH_TOTAL_S"
stat ch_ingest_eps "$(awk -v n="$UNIQUE" -v s="$CH_INSERT_S" 'BEGIN { printf "%.0f", n / s }')"
echo "ClickHouse: $CH_ROWS rows in $CH_INSERT_S s, OPTIMIZE FINAL $CH_OPT_S s" >&2
[ "$CH_ROWS" = "$UNIQUE" ] || echo "run.sh: WARNING: ClickHouse holds $CH_ROWS rows, expected $UNIQUE" >&2
# the generator's own count of persons (connected components of distinct ids) must match
PERSONS=$(awk -F= '$1 == "persons" { print $2 }' "$META")
CH_PERSONS=$($CH --query "SELECT uniqExact(person) FROM events")
[ "$CH_PERSONS" = "$PERSONS" ] || echo "run.sh: WARNING: ClickHouse counts $CH_PERSONS persons, the generator made $PERSONS" >&2

# ---- tally --------------------------------------------------------------------------------
say "starting tally on 127.0.0.1:$TALLY_PORT"
TD="$WORK/tally"
mkdir -p "$TD/data"
cat >"$TD/tally.conf" <<EOF
# benchmark project: fixed keys, UTC, and a retention long enough for the generated 90 days
[project bench]
timezone       = UTC
write_key      = wk_bench
read_key       = rk_bench
retention_days = 3650
EOF
start_tally() { # starts tally and waits until /healthz answers
    ./build/tally serve --config "$TD/tally.conf" --data "$TD/data" \
        --listen "127.0.0.1:$TALLY_PORT" >>"$TD/serve.log" 2>&1 &
    TALLY_PID=$!
    for i in $(seq 600); do
        curl -sf "http://127.0.0.1:$TALLY_PORT/healthz" >/dev/null 2>&1 && return 0
        kill -0 "$TALLY_PID" 2>/dev/null || { cat "$TD/serve.log" >&2; exit 1; }
        sleep 0.1
    done
    echo "run.sh: tally did not answer in 60 s" >&2
    exit 1
}
start_tally

say "tally: sending $SENT events over HTTP, batches of $BATCH, $CONNS connections"
"$WORK/load" --port "$TALLY_PORT" --key wk_bench --file "$WORK/data/events.ndjson" \
    --batch "$BATCH" --conns "$CONNS" >"$WORK/load.env" || echo "run.sh: WARNING: some batches failed" >&2
cat "$WORK/load.env" >&2
LOAD_S=$(awk -F= '$1 == "seconds" { print $2 }' "$WORK/load.env")
stat tally_ingest_eps "$(awk -F= '$1 == "events_per_s" { print $2 }' "$WORK/load.env")"
stat tally_load "\"$(tr '\n' ' ' <"$WORK/load.env")\""
ACC=$(awk -F= '$1 == "accepted" { print $2 }' "$WORK/load.env")
DUP=$(awk -F= '$1 == "duplicates" { print $2 }' "$WORK/load.env")
[ "$ACC" = "$UNIQUE" ] ||
    echo "run.sh: WARNING: tally answered accepted=$ACC duplicates=$DUP; the data has $UNIQUE unique events and $((SENT - UNIQUE)) resent ones" >&2
say "tally: waiting until all $UNIQUE unique events are queryable"
WAIT_S=$("$PY" bench/bench.py wait --tally-port "$TALLY_PORT" --read-key rk_bench --meta "$META" \
    --since "$(now)" --timeout 600)
stat tally_wait_s "$WAIT_S"
# the load client's own clock (not its start-up, which maps the file) plus the wait
stat tally_ingest_total_s "$(awk -v a="$LOAD_S" -v b="$WAIT_S" 'BEGIN { if (b == "nan") print "nan"; else printf "%.3f", a + b }')"
echo "tally: sent in $LOAD_S s, queryable $WAIT_S s later" >&2

# ---- queries ------------------------------------------------------------------------------
say "queries: one warm-up and $RUNS timed runs each, on both"
"$PY" bench/bench.py queries --tally-port "$TALLY_PORT" --read-key rk_bench \
    --ch-port "$CH_HTTP" --meta "$META" --runs "$RUNS" --out "$WORK/queries.json" \
    --persons "$WORK/persons.json"

# ---- memory, then stop, then disk ---------------------------------------------------------
stat load_end "\"$(cut -d' ' -f1-3 /proc/loadavg)\""
hwm() { awk '/VmHWM/ { print $2 * 1024 }' "/proc/$1/status" 2>/dev/null || echo nan; }
stat tally_hwm_bytes "$(hwm "$TALLY_PID")"
stat ch_hwm_bytes "$(hwm "$CH_PID")"
# ClickHouse deletes merged-away parts a second or so after OPTIMIZE; wait for that
for _ in $(seq 120); do
    [ "$($CH --query "SELECT count() FROM system.parts WHERE table = 'events' AND NOT active")" = 0 ] && break
    sleep 0.5
done
say "stopping both servers (tally seals and checkpoints on SIGTERM)"
T=$(now)
stop_pid "$TALLY_PID" tally
stat tally_stop_s "$(elapsed "$T")"
TALLY_PID=""
stop_pid "$CH_PID" clickhouse-server
CH_PID=""
stat tally_disk_bytes "$(du -sb "$TD/data" | cut -f1)"
stat ch_disk_bytes "$(du -sb "$CHD/data" | cut -f1)"
du -sh "$TD/data"/* "$CHD/data/data/default/events" >&2 || true

# ---- restart: from process start until a count over everything is right ------------------
say "restart: each server alone, timed from start until it counts all $UNIQUE events"
T=$(now)
start_tally
stat tally_restart_s "$("$PY" bench/bench.py wait --tally-port "$TALLY_PORT" --read-key rk_bench \
    --meta "$META" --since "$T" --timeout 300)"
# the timeline's persons again, each once, while nothing is decoded yet (the count above
# reads no did column)
"$PY" bench/bench.py timeline-restart --tally-port "$TALLY_PORT" --read-key rk_bench \
    --persons "$WORK/persons.json" --queries "$WORK/queries.json" ||
    echo "run.sh: WARNING: the timeline after a restart was not measured" >&2
stop_pid "$TALLY_PID" tally
TALLY_PID=""
T=$(now)
start_ch
stat ch_restart_s "$("$PY" bench/bench.py wait --ch-port "$CH_HTTP" --meta "$META" --since "$T" \
    --timeout 300)"
stop_pid "$CH_PID" clickhouse-server
CH_PID=""

# ---- report -------------------------------------------------------------------------------
"$PY" bench/bench.py report --stats "$STATS" --queries "$WORK/queries.json" \
    --md bench/results.md --command "$CMDLINE"
# the cost of enrichment at ingest, on its own data (appends its table to results.md)
bash bench/enrich.sh --work "$WORK/enrich" --conns "$CONNS" --md bench/results.md ||
    echo "run.sh: WARNING: bench/enrich.sh failed" >&2
echo
echo "written: bench/results.md"
