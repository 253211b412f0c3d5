//! Small OS helpers the standard library does not offer.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// Raises the soft limit on open descriptors to the hard limit, so that a
/// thread-per-client server can hold as many clients as the system allows.
/// Returns the new soft limit.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let new = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } != 0 {
            return Err(io::Error::last_os_error());
        }
        return Ok(new.rlim_cur);
    }
    Ok(lim.rlim_cur)
}

/// Waits until `sock` has bytes to read (or EOF/error), at most `timeout`
/// (`None`: forever). Returns whether it is readable.
pub(crate) fn wait_readable(sock: &impl AsRawFd, timeout: Option<Duration>) -> io::Result<bool> {
    let ms: libc::c_int = match timeout {
        None => -1,
        Some(d) => d.as_millis().min(i32::MAX as u128) as libc::c_int,
    };
    let mut pfd = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd, count 1.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r >= 0 {
            return Ok(r > 0);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Sets the accept queue of a listening socket to `backlog` connections (the
/// kernel caps it at `net.core.somaxconn`). std listens with 128, which
/// overflows in a burst of connects: the kernel then drops SYNs and clients
/// wait a second or more to retry. Linux takes a second `listen` on a
/// listening socket as a change of backlog.
pub(crate) fn set_listen_backlog(listener: &impl AsRawFd, backlog: usize) -> io::Result<()> {
    let n = backlog.min(i32::MAX as usize) as libc::c_int;
    // SAFETY: listen on a descriptor we own; no memory is passed.
    if unsafe { libc::listen(listener.as_raw_fd(), n) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sends what the socket's buffer takes of `bytes` now, without blocking
/// (`MSG_DONTWAIT`), whatever the socket's own mode: for a last notice to a
/// peer that may have stopped reading, from a thread that must not wait.
pub(crate) fn send_nowait(sock: &impl AsRawFd, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: send reads `bytes.len()` bytes from a valid slice.
    let r = unsafe {
        libc::send(
            sock.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// Turns on TCP keepalive with a probe after `idle`, so that peers that
/// vanished without a FIN (pulled cable, crashed host) are noticed.
pub(crate) fn set_keepalive(sock: &impl AsRawFd, idle: Duration) -> io::Result<()> {
    let fd = sock.as_raw_fd();
    let set = |level, name, val: libc::c_int| -> io::Result<()> {
        // SAFETY: setsockopt reads one c_int from a valid pointer.
        let r = unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                (&val as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)?;
    let secs = idle.as_secs().clamp(1, 32767) as libc::c_int;
    set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, secs)?;
    set(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, (secs / 4).max(1))?;
    set(libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 4)?;
    Ok(())
}

/// Shortest and longest slice the kernel takes (it clamps to these).
pub const SCHED_SLICE_MIN: Duration = Duration::from_micros(100);
pub const SCHED_SLICE_MAX: Duration = Duration::from_millis(100);

/// Asks the scheduler to run the calling thread in slices of `slice`
/// (Linux 6.12 or later, `sched_setattr` with `sched_runtime` for a normal
/// thread), keeping its policy, nice value and flags. Under EEVDF a thread
/// with a shorter slice gets an earlier deadline: woken, it preempts a
/// thread that would otherwise run out a default slice (1.4 ms on two
/// cores) first. Its share of the CPU is unchanged. Threads under a
/// real-time or deadline policy are left alone. Fails with `Unsupported`
/// on other systems and on kernels that ignore the request.
pub(crate) fn set_sched_slice(slice: Duration) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        linux_sched::set_slice(slice)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = slice;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "scheduler slices are a Linux feature",
        ))
    }
}

#[cfg(target_os = "linux")]
mod linux_sched {
    use std::io;
    use std::time::Duration;

    /// `struct sched_attr` as of its first version (48 bytes); the kernel
    /// takes any version it knows by its `size`.
    #[repr(C)]
    #[derive(Default)]
    struct SchedAttr {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
    }

    const SCHED_ATTR_SIZE_VER0: u32 = 48;
    /// Flags that need the larger versions of the struct.
    const SCHED_FLAG_UTIL_CLAMP: u64 = 0x20 | 0x40;

    fn get() -> io::Result<SchedAttr> {
        let mut a = SchedAttr::default();
        // SAFETY: the kernel writes at most `SCHED_ATTR_SIZE_VER0` bytes
        // into `a`, which is that large; pid 0 is the calling thread.
        let r = unsafe {
            libc::syscall(
                libc::SYS_sched_getattr,
                0,
                &mut a as *mut SchedAttr,
                SCHED_ATTR_SIZE_VER0,
                0,
            )
        };
        if r == 0 {
            Ok(a)
        } else {
            Err(io::Error::last_os_error())
        }
    }

    pub(super) fn set_slice(slice: Duration) -> io::Result<()> {
        let mut a = get()?;
        let policy = a.policy as libc::c_int;
        if policy != libc::SCHED_OTHER && policy != libc::SCHED_BATCH {
            return Ok(());
        }
        let want = slice.clamp(super::SCHED_SLICE_MIN, super::SCHED_SLICE_MAX);
        a.size = SCHED_ATTR_SIZE_VER0;
        a.flags &= !SCHED_FLAG_UTIL_CLAMP;
        a.runtime = want.as_nanos() as u64;
        // SAFETY: the kernel reads `a.size` bytes of `a`; pid 0 is the
        // calling thread.
        let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &a as *const SchedAttr, 0) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        // Kernels before 6.12 accept the call and ignore the runtime of a
        // normal thread; they report 0 back.
        if get()?.runtime != a.runtime {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this kernel does not take a slice for normal threads (Linux 6.12 does)",
            ));
        }
        Ok(())
    }
}

/// Number of threads of this process (Linux).
pub fn thread_count() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/task").ok()?.count())
}

/// Number of open descriptors of this process (Linux).
pub fn fd_count() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

/// The user's login name, for the default chat name.
pub fn login_name() -> String {
    for var in ["USER", "LOGNAME", "USERNAME"] {
        if let Ok(v) = std::env::var(var)
            && !v.is_empty()
        {
            return v;
        }
    }
    // No variable (a bare container, a service): ask the user database.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwuid_r writes into `pw` and `buf` (of the length given) and
    // sets `out` to `&pw` on success; `pw_name` then points into `buf`.
    let r = unsafe {
        libc::getpwuid_r(
            libc::getuid(),
            &mut pw,
            buf.as_mut_ptr(),
            buf.len(),
            &mut out,
        )
    };
    if r == 0 && !out.is_null() && !pw.pw_name.is_null() {
        // SAFETY: pw_name is a NUL-terminated string inside `buf`, alive here.
        let name = unsafe { std::ffi::CStr::from_ptr(pw.pw_name) };
        if let Ok(n) = name.to_str()
            && !n.is_empty()
        {
            return n.to_string();
        }
    }
    String::from("guest")
}

/// Writes a line to stderr, ignoring failure: `eprintln!` panics when stderr
/// is closed (a daemonised server, a parent that stopped reading), and a log
/// writer or session thread must never die of that.
pub fn warn(msg: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut e = io::stderr().lock();
    let _ = e.write_fmt(msg);
    let _ = e.write_all(b"\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a kernel that takes slices the thread reports the one it asked
    /// for, clamped to the kernel's range, and keeps its nice value; on one
    /// that does not, the call says so instead of pretending.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_thread_gets_the_slice_it_asks_for_or_an_error() {
        let seen = std::thread::spawn(|| {
            // SAFETY: nice only changes the calling thread's priority.
            let _ = unsafe { libc::nice(3) };
            let before = linux_sched_probe();
            let first = set_sched_slice(Duration::from_micros(250));
            let after_first = linux_sched_probe();
            let second = set_sched_slice(Duration::from_micros(5));
            (
                before,
                first.map_err(|e| e.kind()),
                after_first,
                second.map_err(|e| e.kind()),
                linux_sched_probe(),
            )
        })
        .join()
        .expect("probe thread");
        let (before, first, after_first, second, after_second) = seen;
        match first {
            Ok(()) => {
                assert_eq!(after_first, (before.0, 250_000), "nice kept, slice taken");
                assert_eq!(second, Ok(()));
                assert_eq!(
                    after_second.1,
                    SCHED_SLICE_MIN.as_nanos() as u64,
                    "clamped up"
                );
            }
            Err(kind) => {
                assert!(
                    matches!(
                        kind,
                        io::ErrorKind::Unsupported | io::ErrorKind::PermissionDenied
                    ),
                    "{kind:?}"
                );
                assert_eq!(after_first.0, before.0, "nothing else changed");
            }
        }
    }

    /// (nice, runtime) of the calling thread, as `sched_getattr` reports them.
    #[cfg(target_os = "linux")]
    fn linux_sched_probe() -> (i32, u64) {
        let mut a = [0u8; 48];
        // SAFETY: the kernel writes at most 48 bytes into `a`.
        let r = unsafe { libc::syscall(libc::SYS_sched_getattr, 0, a.as_mut_ptr(), 48u32, 0) };
        assert_eq!(r, 0, "sched_getattr: {}", io::Error::last_os_error());
        let nice = i32::from_ne_bytes(a[16..20].try_into().expect("4 bytes"));
        let runtime = u64::from_ne_bytes(a[24..32].try_into().expect("8 bytes"));
        (nice, runtime)
    }
}
