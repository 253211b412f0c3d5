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
