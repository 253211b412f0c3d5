//! `benches/compare.sh`, the script behind the README's reference comparison,
//! run for real on a tiny load (two clients, a fraction of a second): it
//! starts both servers, alternates which one runs first, reads their CPU and
//! prints the summary, and in `--self-check` runs the reference twice. The
//! figures themselves are noise at this size; what is checked is that every
//! run answered messages and the summary has every line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::util::nats::free_port;
use crate::util::{Share, WAIT, process};

/// The reference server that `cargo test` built beside the binary under
/// test (examples are built with the tests), or `None` if it is not there.
fn reference_server() -> Option<PathBuf> {
    let bin = Path::new(process::CHATMON)
        .parent()?
        .join("examples/reference_server");
    bin.exists().then_some(bin)
}

/// Whether the script's tools are here (`ss` for the listener, `python3` for
/// the summary); under CI their absence fails the test rather than skip it.
fn tools_present() -> bool {
    let missing: Vec<&str> = ["python3", "ss"]
        .into_iter()
        .filter(|t| !process::installed(t))
        .collect();
    if missing.is_empty() {
        return true;
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(
        !ci,
        "benches/compare.sh needs {missing:?} (apt-get install python3 iproute2)"
    );
    eprintln!("SKIPPED compare.sh test: {missing:?} not installed");
    false
}

/// Runs the script with `args` after the binaries, two free ports, two pairs
/// of short runs at two clients and `--raw`; returns its output and the raw
/// rows (`server clients messages ... pair`).
fn compare(reference: &Path, args: &[&str]) -> (Output, Vec<Vec<String>>) {
    let _share = Share::take();
    let dir = tempfile::tempdir().expect("tempdir");
    let raw = dir.path().join("raw.tsv");
    let first = free_port();
    // Each port was free when asked for; the two must also differ.
    let second = std::iter::repeat_with(free_port)
        .take(100)
        .find(|&p| p != first)
        .expect("a second free port");
    let ports = format!("{first},{second}");
    let mut cmd = Command::new("bash");
    cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/compare.sh"))
        .args(["--chatmon", process::CHATMON])
        .arg("--reference")
        .arg(reference)
        .args(["--pairs", "2", "--clients", "2", "--duration", "300ms"])
        .args(["--ports", &ports])
        .arg("--raw")
        .arg(&raw)
        .args(args)
        .env("TMPDIR", dir.path());
    let out = process::run(cmd, WAIT * 6);
    let rows = std::fs::read_to_string(&raw)
        .unwrap_or_default()
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    (out, rows)
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The summary's lines for one client count, in order, under a header
/// naming the second server.
fn assert_summary(stdout: &str, second: &str) {
    let header = stdout.lines().next().unwrap_or_default();
    assert!(
        header.contains("reference") && header.contains(second) && header.contains("ratio"),
        "header: {stdout}"
    );
    for figure in [
        "server CPU µs/msg",
        "throughput msg/s",
        "p99 µs",
        "bench CPU µs/msg",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.trim_start().starts_with('2') && l.contains(figure)),
            "no `{figure}` line for 2 clients:\n{stdout}"
        );
    }
}

/// Every run answered messages; the servers ran in the order given.
fn assert_rows(rows: &[Vec<String>], order: &[&str]) {
    let kinds: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(kinds, order, "rows: {rows:?}");
    for r in rows {
        assert_eq!(r[1], "2", "clients: {r:?}");
        let msgs: u64 = r[2].parse().expect("messages");
        assert!(msgs > 0, "a run answered nothing: {r:?}");
        let cpu: f64 = r[5].parse().expect("server cpu");
        assert!(cpu >= 0.0, "server cpu: {r:?}");
    }
}

/// Runs the script with `args`: it succeeds, says `says` on stderr, sums up
/// with `second` as the other server, and ran the servers in `order`.
fn check_run(args: &[&str], says: &str, second: &str, order: &[&str]) {
    let reference = reference_server().unwrap_or_else(|| {
        panic!(
            "no reference_server beside {}: cargo test builds examples",
            process::CHATMON
        )
    });
    if !tools_present() {
        return;
    }
    let (out, rows) = compare(&reference, args);
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "compare.sh {args:?} failed:\n{stdout}\n{stderr}"
    );
    assert!(stderr.contains(says), "{stderr}");
    assert_summary(&stdout, second);
    assert_rows(&rows, order);
}

#[test]
fn compare_runs_both_servers_in_alternating_order_and_sums_up() {
    // The first pair runs the reference first, the second runs it last.
    check_run(
        &[],
        "2 alternating pairs (reference, chatmon)",
        "chatmon",
        &["reference", "chatmon", "chatmon", "reference"],
    );
}

#[test]
fn compare_self_check_runs_the_reference_in_both_slots() {
    check_run(
        &["--self-check"],
        "the reference again (--self-check)",
        "reference2",
        &["reference", "reference2", "reference2", "reference"],
    );
}

#[test]
fn compare_refuses_bad_arguments_in_words() {
    for (args, says) in [
        (&["--ports", "29401"][..], "--ports needs two port numbers"),
        (&["--bogus"][..], "unknown argument --bogus"),
    ] {
        let mut cmd = Command::new("bash");
        cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/compare.sh"))
            .args([
                "--chatmon",
                process::CHATMON,
                "--reference",
                process::CHATMON,
            ])
            .args(args);
        let out = process::run(cmd, WAIT * 2);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
