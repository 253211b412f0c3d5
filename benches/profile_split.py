#!/usr/bin/env python3
"""Splits a `perf record -g` profile of a server into where its time goes.

Reads `perf script` output on stdin; each sample is put in the first category
(in the order below) that one of its frames, leaf first, matches. With
`--us-per-msg X` (the server's measured CPU per message) each share is also
given in microseconds per message.

  perf script -i perf.data -F comm,tid,sym | benches/profile_split.py --us-per-msg 9.1
"""
import re
import sys
from collections import Counter

# (category, frame pattern); the first match walking from the leaf wins.
RULES = [
    ("futex (channel wake/wait)", r"futex"),
    ("log file write()", r"ksys_write|vfs_write|__GI___libc_write"),
    ("recv() syscall, blocking + switch", r"__libc_recv|__x64_sys_recvfrom"),
    ("send() syscall + loopback TCP", r"__send$|__x64_sys_sendto"),
    ("sleep (writer linger)", r"nanosleep"),
    ("allocation (malloc/free)", r"malloc|_int_free|cfree|__libc_free|realloc|_int_"),
    ("wall clock read", r"clock_gettime|vdso|eventlog::clock"),
    ("log line format", r"format_line|push_time|push_num|escape|LogMessage|fmt::"),
    ("log channel send", r"mpmc|mpsc|Sender|list::Channel"),
    ("log writer other", r"eventlog::writer"),
    ("counters + histogram", r"ReplyTimes|stats::|Counters"),
    ("tap (event stream)", r"broadcast_event|with_tap|upgrade"),
    ("framing", r"LineFramer|framer"),
    ("session other", r"chatmon::server|Session"),
]


def main():
    us = None
    if "--us-per-msg" in sys.argv:
        us = float(sys.argv[sys.argv.index("--us-per-msg") + 1])
    total = 0
    cats = Counter()
    sample = []

    def flush():
        nonlocal total
        if not sample:
            return
        total += 1
        frames = sample[1:]
        # The log writer's thread is its own line, whatever it does.
        who = "log writer thread: " if sample[0].split()[0] == "chatmon-log" else ""
        for name, pat in RULES:
            if any(re.search(pat, f) for f in frames):
                cats[who + name] += 1
                return
        cats[who + "other (" + (frames[0] if frames else "?")[:40] + ")"] += 1

    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line.strip():
            flush()
            sample.clear()
            continue
        if not line.startswith("\t"):
            flush()
            sample.clear()
            sample.append(line)
        else:
            parts = line.split(None, 1)
            sample.append(parts[1] if len(parts) > 1 else parts[0])
    flush()
    merged = Counter()
    for k, v in cats.items():
        merged["other" if "other (" in k and v / max(total, 1) < 0.01 else k] += v
    for k, v in merged.most_common():
        share = v / total
        extra = f"  {share * us:6.2f} µs/msg" if us else ""
        print(f"{share * 100:6.1f} %{extra}  {k}")
    print(f"{total} samples")


if __name__ == "__main__":
    main()
