#!/usr/bin/env bash
# tui_cpu.sh: the chat TUI's own CPU while three other users chat.
#
# Starts `chatmon serve`, opens `chatmon chat` in a pseudo-terminal (160×50,
# through script(1)), then runs `chatmon bench --mode chat` with 3 clients at
# RATE messages per second in total (default 150: 50 each), whose messages
# the TUI receives as relays and shows, while its log panel tails the
# server's log (two lines per message, plus the relays). Prints the TUI
# process's user+sys CPU over the bench as a share of one core
# (from /proc/PID/stat). Target: < 5 % of one core.
#
#   benches/tui_cpu.sh [--rate 150] [--duration 20s] [--chatmon BIN]
#
# Loopback only: binds 127.0.0.1:29420.
set -euo pipefail
RATE=150
DURATION=20s
CHATMON=
ADDR=127.0.0.1:29420
while [ $# -gt 0 ]; do
    case "$1" in
        --rate) RATE=${2:?}; shift 2 ;;
        --duration) DURATION=${2:?}; shift 2 ;;
        --chatmon) CHATMON=${2:?}; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "tui_cpu.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "$CHATMON" ]; then
    [ -x "$ROOT/target/release/chatmon" ] || (cd "$ROOT" && cargo build --release --bin chatmon) >&2
    CHATMON=$ROOT/target/release/chatmon
fi
command -v script >/dev/null || { echo "tui_cpu.sh: script(1) (util-linux) is needed" >&2; exit 2; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/chatmon-tui-cpu.XXXXXX")
PIDS=()
TUI=
cleanup() {
    # The TUI first: script(1) ends with its child, not on a signal.
    if [ -n "$TUI" ]; then kill "$TUI" 2>/dev/null || true; sleep 0.2; fi
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

ticks() {
    local stat
    stat=$(cat "/proc/$1/stat")
    stat=${stat##*) }
    # shellcheck disable=SC2086
    set -- $stat
    echo $(( ${12} + ${13} ))
}

# A run right after another: its server may still hold the port a moment.
listening() { ss -Hltn "sport = :${ADDR##*:}" | grep -q .; }
for _ in $(seq 100); do listening || break; sleep 0.05; done
"$CHATMON" serve --bind "$ADDR" --log "$WORK/server.log" >/dev/null 2>"$WORK/server.err" &
SERVER=$!
PIDS+=($SERVER)
for _ in $(seq 100); do listening && break; sleep 0.05; done
listening && kill -0 "$SERVER" 2>/dev/null \
    || { echo "tui_cpu.sh: the server did not start on $ADDR: $(tail -2 "$WORK/server.err")" >&2; exit 1; }
# The TUI in a 160×50 pseudo-terminal, tailing the server's log, its input a
# pipe that stays open and silent (no keys; /dev/zero would type NULs).
mkfifo "$WORK/keys"
sleep 3600 >"$WORK/keys" 2>/dev/null </dev/null &
PIDS+=($!)
script -qfec "stty cols 160 rows 50; exec $CHATMON chat --server $ADDR --name watcher --log $WORK/tui.log --tail $WORK/server.log --no-local-server" /dev/null \
    <"$WORK/keys" >"$WORK/screen" 2>&1 &
PIDS+=($!)
# The TUI's process (not script's): its comm is the binary's name, cut at 15.
COMM=$(basename "$CHATMON" | cut -c1-15)
for _ in $(seq 100); do
    TUI=$(pgrep -f "chat --server $ADDR --name watcher" | while read -r p; do
        [ "$(cat /proc/"$p"/comm)" = "$COMM" ] && echo "$p"; done | head -1 || true)
    [ -n "$TUI" ] && break
    sleep 0.05
done
[ -n "$TUI" ] || { echo "tui_cpu.sh: the TUI did not start" >&2; exit 1; }
sleep 2
before=$(ticks "$TUI")
t0=$(date +%s.%N)
"$CHATMON" bench --server "$ADDR" --mode chat --clients 3 --rate "$RATE" --duration "$DURATION" \
    --warmup 0s --json "$WORK/bench.json" >/dev/null 2>"$WORK/bench.err" \
    || { echo "tui_cpu.sh: the bench failed: $(tail -3 "$WORK/bench.err")" >&2; exit 1; }
t1=$(date +%s.%N)
after=$(ticks "$TUI")
python3 - "$before" "$after" "$(getconf CLK_TCK)" "$t0" "$t1" "$WORK/bench.json" <<'PY'
import json, sys
b, a, tick, t0, t1 = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
row = json.load(open(sys.argv[6]))["rows"][0]
wall = t1 - t0
cpu = (a - b) / tick
print(f"TUI CPU: {cpu:.2f} s over {wall:.1f} s = {cpu / wall * 100:.1f} % of one core "
      f"({row['messages']} messages from 3 clients, {row['messages'] / wall:.0f} msg/s)")
PY
