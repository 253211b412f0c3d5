//! `serve --sched-slice` against the real binary: the slice each of its
//! threads runs in, as the kernel reports it (`sched_getattr` on the
//! thread), and the warning where the kernel does not take one.

use std::time::Duration;

use crate::util::process::ServeCmd;
use crate::util::{Chat, Plain, wait_for};

/// Offset of `sched_runtime` in the kernel's 48-byte `struct sched_attr`.
const RUNTIME: std::ops::Range<usize> = 24..32;

/// Thread `tid`'s `struct sched_attr`, as bytes.
fn attr_of(tid: libc::pid_t) -> Option<[u8; 48]> {
    let mut a = [0u8; 48];
    // SAFETY: the kernel writes at most 48 bytes into `a`.
    let r = unsafe { libc::syscall(libc::SYS_sched_getattr, tid, a.as_mut_ptr(), 48u32, 0) };
    (r == 0).then_some(a)
}

/// The slice (`sched_runtime`) the kernel reports for thread `tid`: its
/// `se.slice` on Linux 6.12 and later, 0 before.
fn slice_of(tid: libc::pid_t) -> Option<u64> {
    let a = attr_of(tid)?;
    Some(u64::from_ne_bytes(a[RUNTIME].try_into().expect("8 bytes")))
}

/// Whether this kernel lets a normal thread choose its slice: asked on a
/// thread of the test's own, through the kernel's struct as bytes (not the
/// crate's code under test).
fn kernel_takes_slices() -> bool {
    std::thread::spawn(|| {
        // SAFETY: gettid has no arguments.
        let me = unsafe { libc::gettid() };
        let Some(mut a) = attr_of(me) else {
            return false;
        };
        a[RUNTIME].copy_from_slice(&300_000u64.to_ne_bytes());
        // SAFETY: the kernel reads the 48 bytes its `size` field (read back
        // as 48) gives; pid 0 is this thread.
        let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, a.as_ptr(), 0) };
        r == 0 && slice_of(me) == Some(300_000)
    })
    .join()
    .expect("probe thread")
}

/// Threads of process `pid` by name.
fn threads(pid: libc::pid_t) -> Vec<(String, libc::pid_t)> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/task")).expect("/proc/PID/task");
    dir.filter_map(|e| {
        let e = e.ok()?;
        let tid: libc::pid_t = e.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
        Some((comm.trim_end().to_string(), tid))
    })
    .collect()
}

/// Serves one plain and one chat client with `args`, then returns each
/// thread's name and slice.
fn slices_with(args: &[&str]) -> (Vec<(String, u64)>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let serve = ServeCmd::new(&dir.path().join("log.txt"))
        .args(args.iter().copied())
        .start();
    let mut p = Plain::new(serve.addr);
    p.send(b"hi\n");
    assert_eq!(p.line(), "Server received: hi");
    let _chat = Chat::join(serve.addr, "sched");
    let pid = serve.child.pid();
    // The chat writer thread starts while the welcome is written.
    let seen = wait_for("for the chat session's writer thread", || {
        let t = threads(pid);
        t.iter().any(|(n, _)| n.ends_with("-out")).then_some(t)
    });
    let slices = seen
        .into_iter()
        .filter_map(|(name, tid)| Some((name, slice_of(tid)?)))
        .collect();
    (slices, serve.stderr())
}

fn slice_named(slices: &[(String, u64)], pred: impl Fn(&str) -> bool) -> Vec<u64> {
    slices
        .iter()
        .filter(|(n, _)| pred(n))
        .map(|(_, s)| *s)
        .collect()
}

#[test]
fn client_threads_run_in_the_slice_asked_for() {
    let is_client = |n: &str| n.starts_with("client-");
    let (asked, stderr) = slices_with(&["--sched-slice", "500us"]);
    if !kernel_takes_slices() {
        // An older kernel: the server says why, once, and serves anyway.
        assert!(
            stderr.contains("cannot run client threads in 500µs scheduler slices"),
            "{stderr}"
        );
        return;
    }
    assert!(!stderr.contains("scheduler slices"), "{stderr}");
    let clients = slice_named(&asked, is_client);
    // The plain session, the chat session and its writer.
    assert_eq!(clients, vec![500_000; 3], "{asked:?}");
    assert_eq!(
        slice_named(&asked, |n| n == "chatmon-accept"),
        vec![500_000]
    );
    // The log writer keeps the kernel's default: it batches, it may wait.
    let log = slice_named(&asked, |n| n == "chatmon-log");
    assert_eq!(log.len(), 1, "{asked:?}");
    assert_ne!(log[0], 500_000, "{asked:?}");
    let kernel_default = log[0];

    let (two_ms, _) = slices_with(&["--sched-slice", "2ms"]);
    assert_eq!(
        slice_named(&two_ms, is_client),
        vec![2_000_000; 3],
        "{two_ms:?}"
    );

    // Unasked, as with `--sched-slice 0`, every thread has the kernel's own.
    for args in [&[][..], &["--sched-slice", "0"][..]] {
        let (off, stderr) = slices_with(args);
        assert_eq!(
            slice_named(&off, is_client),
            vec![kernel_default; 3],
            "{args:?}: {off:?}"
        );
        assert_eq!(
            slice_named(&off, |n| n == "chatmon-accept"),
            vec![kernel_default],
            "{args:?}: {off:?}"
        );
        assert!(!stderr.contains("scheduler slices"), "{stderr}");
    }
}

#[test]
fn a_slice_the_kernel_would_clamp_is_refused_in_words() {
    let out = crate::util::process::run(
        {
            let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_chatmon"));
            c.args(["serve", "--sched-slice", "10us"]);
            c
        },
        Duration::from_secs(10),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "10us is outside the kernel's range: give 0 (the default slice) or 100us to 100ms"
        ),
        "{err}"
    );
}
