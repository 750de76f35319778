//! Request threads ask the kernel for a short scheduler slice.
//!
//! A request thread works in bursts of microseconds (a cache hit is ~15 µs) and then waits for
//! sockets; image workers and libvips run for milliseconds at a time. With equal slices (the
//! kernel's default, 0.75 ms × (1 + log2 CPUs): 1.4 ms on two cores) a request thread that
//! wakes while the cores are busy transforming waits for a worker's slice to run out, and the
//! hits it would answer wait with it. Linux 6.12's EEVDF scheduler lets a thread ask for a
//! shorter slice (`sched_attr.sched_runtime` for an ordinary thread): it then runs sooner after
//! waking, for shorter turns, and keeps its fair share of the CPU. Measured (docs/performance.md,
//! change 29): repeated-URL hits next to cold 12 MP transforms, p99 5.2–7.1 ms → 2.9–3.7 ms.
//!
//! Older kernels ignore the field for ordinary threads; a kernel that refuses the call leaves
//! the thread as it was. Only the threads that serve connections ask; threads they start
//! inherit it (the access log's flusher, which sleeps, and resolvers).

use std::cell::Cell;

/// The slice asked for: the shortest the kernel accepts (it clamps to 0.1–100 ms).
pub const SLICE_NS: u64 = 100_000;

/// Asks for [`SLICE_NS`] for the calling thread, once per thread.
pub fn short_for_this_thread() {
    thread_local!(static ASKED: Cell<bool> = const { Cell::new(false) });
    if ASKED.replace(true) {
        return;
    }
    if let Err(e) = set_slice(SLICE_NS) {
        tracing::debug!(error = %e, "request thread keeps the default scheduler slice");
    }
}

/// `sched_setattr(2)` for the calling thread: an ordinary (`SCHED_OTHER`) thread at its
/// current nice value, with `runtime_ns` as its slice.
fn set_slice(runtime_ns: u64) -> std::io::Result<()> {
    /// `struct sched_attr` as far as `SCHED_ATTR_SIZE_VER0` (the fields an ordinary thread uses).
    #[repr(C)]
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
    // SAFETY: getpriority reads the calling thread's nice value (who 0 = this thread on Linux).
    // errno is cleared first because -1 is also a valid nice value.
    let nice = unsafe {
        *libc::__errno_location() = 0;
        libc::getpriority(libc::PRIO_PROCESS, 0)
    };
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: libc::SCHED_OTHER as u32,
        flags: 0,
        nice: match std::io::Error::last_os_error().raw_os_error() {
            Some(0) | None => nice,
            Some(_) => 0,
        },
        priority: 0,
        runtime: runtime_ns,
        deadline: 0,
        period: 0,
    };
    // SAFETY: pid 0 is the calling thread; `attr` is a valid sched_attr of the size it declares
    // and outlives the call.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    match rc {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slice itself is checked on the running server (tests/operations.rs), where the
    /// kernel reports it.
    #[test]
    fn asking_for_the_slice_keeps_the_threads_nice_value() {
        std::thread::spawn(|| {
            // SAFETY: raising this thread's own nice value is always allowed.
            unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 3) };
            set_slice(SLICE_NS).expect("sched_setattr for an ordinary thread");
            // SAFETY: reads this thread's nice value.
            assert_eq!(unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }, 3);
        })
        .join()
        .unwrap();
    }
}
