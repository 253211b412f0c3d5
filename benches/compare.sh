#!/usr/bin/env bash
# compare.sh: chatmon's server (full logging) against the bare reference
# server (examples/reference_server.rs, no log), in alternating pairs so that
# whatever else loads the machine hits both alike.
#
# For each client count, each pair runs the reference server and
# `chatmon serve` (the reference first in odd pairs, second in even ones),
# each under the same closed-loop `chatmon bench`. A server's
# CPU is user+sys from /proc/PID/stat over the bench, divided by the messages
# the bench had answered (warm-up off, so that every message is counted). It
# prints, per client count, the medians and the min..max spread over the
# pairs of: server CPU per message, throughput, p99 round trip, each side and
# as a ratio chatmon/reference; and the bench's own CPU per message and share
# of the machine's cores.
#
#   benches/compare.sh                       # 5 pairs at 1,10,100,1000 clients
#   benches/compare.sh --pairs 7 --clients 10,100 --duration 5s
#
# Options:
#   --pairs N        alternating pairs per client count (default 5)
#   --clients LIST   comma-separated client counts (default 1,10,100,1000)
#   --duration D     length of each bench (default 4s)
#   --size BYTES     payload (default 32)
#   --chatmon BIN    chatmon binary (default target/release/chatmon, built if missing)
#   --reference BIN  reference server (default target/release/examples/reference_server)
#   --raw FILE       also keep every run's figures, one line each (TSV)
#   --serve-args A   extra arguments for `chatmon serve`, split on spaces
#                    (e.g. "--sched-slice 500us" to measure a slice)
#   --ports R,C      loopback ports of the reference and of chatmon
#                    (default 29401,29402)
#   --self-check     run the reference server in chatmon's place too: the
#                    ratios then show what the machine's own noise makes of
#                    two identical servers, the floor under any verdict
#
# Needs: bash, python3 (for the summary), ss (to wait for the listener).
# Loopback only. Binds 127.0.0.1:29401 (reference) and :29402 (chatmon) unless
# --ports says otherwise: below Linux's ephemeral range, so that no client
# socket already holds them.
set -euo pipefail

PAIRS=5
CLIENTS=1,10,100,1000
DURATION=4s
SIZE=32
CHATMON=
REFERENCE=
RAW=
SERVE_ARGS=
SELF_CHECK=
REF_ADDR=127.0.0.1:29401
CM_ADDR=127.0.0.1:29402

# Also stops a server started by the run that failed (runs are subshells).
die() {
    echo "compare.sh: $*" >&2
    if [ -n "${SERVER_PID:-}" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
        --pairs) PAIRS=${2:?}; shift 2 ;;
        --clients) CLIENTS=${2:?}; shift 2 ;;
        --duration) DURATION=${2:?}; shift 2 ;;
        --size) SIZE=${2:?}; shift 2 ;;
        --chatmon) CHATMON=${2:?}; shift 2 ;;
        --reference) REFERENCE=${2:?}; shift 2 ;;
        --raw) RAW=${2:?}; shift 2 ;;
        --serve-args) SERVE_ARGS=${2:?}; shift 2 ;;
        --self-check) SELF_CHECK=1; shift ;;
        --ports)
            IFS=, read -r ref_port cm_port <<<"${2:?}"
            [[ "$ref_port" =~ ^[0-9]{1,5}$ && "$cm_port" =~ ^[0-9]{1,5}$ ]] && ((ref_port > 0 && ref_port < 65536 && cm_port > 0 && cm_port < 65536)) \
                || die "--ports needs two port numbers, e.g. 29401,29402"
            REF_ADDR=127.0.0.1:$ref_port CM_ADDR=127.0.0.1:$cm_port
            shift 2 ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) die "unknown argument $1 (try --help)" ;;
    esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "$CHATMON" ] || [ -z "$REFERENCE" ]; then
    if [ ! -x "$ROOT/target/release/chatmon" ] || [ ! -x "$ROOT/target/release/examples/reference_server" ]; then
        (cd "$ROOT" && cargo build --release --bin chatmon --example reference_server) >&2
    fi
fi
CHATMON=${CHATMON:-$ROOT/target/release/chatmon}
REFERENCE=${REFERENCE:-$ROOT/target/release/examples/reference_server}
[ -x "$CHATMON" ] || die "no chatmon binary at $CHATMON"
[ -x "$REFERENCE" ] || die "no reference server at $REFERENCE"
command -v python3 >/dev/null || die "python3 is needed for the summary"
command -v ss >/dev/null || die "ss (iproute2) is needed to wait for the listener"

TICK=$(getconf CLK_TCK)
CORES=$(nproc)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/chatmon-compare.XXXXXX")
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# user+sys ticks of a process (fields 14 and 15, counted after the `(comm)`).
cpu_ticks() {
    local stat
    stat=$(cat "/proc/$1/stat")
    stat=${stat##*) }
    # shellcheck disable=SC2086
    set -- $stat
    echo $(( ${12} + ${13} ))
}

wait_listening() {
    local port=${1##*:}
    for _ in $(seq 400); do
        if ss -Hltn "sport = :$port" | grep -q .; then return 0; fi
        kill -0 "$SERVER_PID" 2>/dev/null || die "the server on $1 exited: $(tail -3 "$WORK/server.err")"
        sleep 0.05
    done
    die "nothing listens on $1: $(tail -3 "$WORK/server.err")"
}

# run_one KIND CLIENTS: prints `KIND CLIENTS msgs throughput p99_us server_cpu_s bench_cpu_s wall_s`.
run_one() {
    local kind=$1 n=$2 addr
    # chatmon's slot and port; with --self-check (kind reference2) the
    # reference takes them, so that only the server differs.
    addr=$CM_ADDR
    if [ "$kind" != chatmon ]; then
        if [ "$kind" = reference ]; then addr=$REF_ADDR; fi
        "$REFERENCE" --bind "$addr" 2>"$WORK/server.err" &
    else
        rm -f "$WORK/chatmon.log"
        # shellcheck disable=SC2086
        "$CHATMON" serve --bind "$addr" --log "$WORK/chatmon.log" --max-clients 20000 $SERVE_ARGS >/dev/null 2>"$WORK/server.err" &
    fi
    SERVER_PID=$!
    wait_listening "$addr"
    local before after t0 t1 times
    before=$(cpu_ticks "$SERVER_PID")
    t0=$(date +%s.%N)
    TIMEFORMAT='%U %S'
    times=$( { time "$CHATMON" bench --server "$addr" --clients "$n" --duration "$DURATION" \
        --warmup 0s --size "$SIZE" --json "$WORK/row.json" >/dev/null 2>"$WORK/bench.err"; } 2>&1 ) \
        || die "bench failed against $kind: $(tail -3 "$WORK/bench.err")"
    t1=$(date +%s.%N)
    after=$(cpu_ticks "$SERVER_PID")
    kill "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
    python3 - "$WORK/row.json" "$kind" "$n" "$before" "$after" "$TICK" "$times" "$t0" "$t1" <<'EOF'
import json, sys
row = json.load(open(sys.argv[1]))["rows"][0]
kind, n, before, after, tick = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
u, s = (float(x) for x in sys.argv[7].split())
wall = float(sys.argv[9]) - float(sys.argv[8])
if row["errors"]:
    print(f"warning: {kind} at {n} clients: {row['errors']} errors ({row.get('first_error')})", file=sys.stderr)
print(kind, n, row["messages"], row["throughput"], row["latency"]["p99_us"],
      (after - before) / tick, u + s, wall)
EOF
}

SECOND="chatmon${SERVE_ARGS:+ serve $SERVE_ARGS}"
SECOND_KIND=chatmon
if [ -n "$SELF_CHECK" ]; then SECOND="the reference again (--self-check)"; SECOND_KIND=reference2; fi
echo "compare.sh: $PAIRS alternating pairs (reference, $SECOND) at $CLIENTS clients, $DURATION each, $SIZE-byte messages, $CORES cores" >&2
RESULTS=$WORK/results.tsv
: >"$RESULTS"
IFS=, read -r -a COUNTS <<<"$CLIENTS"
for n in "${COUNTS[@]}"; do
    for i in $(seq "$PAIRS"); do
        # Odd pairs run the reference first, even pairs second: in four of
        # five self-checks run in one order the second server of a pair came
        # out a little worse, and the order must not decide a ratio.
        order=(reference "$SECOND_KIND")
        if [ $((i % 2)) -eq 0 ]; then order=("$SECOND_KIND" reference); fi
        for kind in "${order[@]}"; do
            line=$(run_one "$kind" "$n")
            echo "$line $i" >>"$RESULTS"
            echo "  $line" >&2
        done
    done
done
if [ -n "$RAW" ]; then
    { echo "server clients messages throughput p99_us server_cpu_s bench_cpu_s wall_s pair"; cat "$RESULTS"; } >"$RAW"
fi

python3 - "$RESULTS" "$CORES" "$SECOND_KIND" <<'EOF'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
cores = int(sys.argv[2])
second = sys.argv[3]
def med(xs): return st.median(xs)
def spread(xs): return f"{min(xs):.2f}..{max(xs):.2f}"
counts = []
for r in rows:
    if int(r[1]) not in counts: counts.append(int(r[1]))
print(f"{'clients':>7}  {'figure':<22} {'reference':>10} {second:>10}  {'ratio':>6}  {'ratio spread':>12}")
for n in counts:
    runs = {}
    for kind, c, msgs, tput, p99, cpu, bcpu, wall, pair in rows:
        if int(c) != n: continue
        runs.setdefault(int(pair), {})[kind] = dict(msgs=int(msgs), tput=float(tput), p99=float(p99),
            cpu_us=float(cpu) / max(int(msgs), 1) * 1e6, bcpu_us=float(bcpu) / max(int(msgs), 1) * 1e6,
            share=float(bcpu) / float(wall) / cores * 100)
    pairs = [p for p in runs.values() if "reference" in p and second in p]
    for key, name, fmt in [("cpu_us", "server CPU µs/msg", "{:.2f}"), ("tput", "throughput msg/s", "{:.0f}"),
                           ("p99", "p99 µs", "{:.0f}")]:
        ref = [p["reference"][key] for p in pairs]
        cm = [p[second][key] for p in pairs]
        ratios = [c / r if r else float("nan") for c, r in zip(cm, ref)]
        print(f"{n:>7}  {name:<22} {fmt.format(med(ref)):>10} {fmt.format(med(cm)):>10}  {med(ratios):>6.2f}  {spread(ratios):>12}")
    allb = [p[k]["bcpu_us"] for p in pairs for k in p]
    shares = [p[k]["share"] for p in pairs for k in p]
    print(f"{n:>7}  {'bench CPU µs/msg':<22} {med(allb):>10.2f} {'':>10}  share of {cores} cores: {med(shares):.0f} % ({min(shares):.0f}..{max(shares):.0f})")
EOF
