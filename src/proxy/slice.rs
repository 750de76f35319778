//! Request threads take short turns on the CPU.
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
//! A short slice does not help against the other request threads: a thread kept busy by its
//! connections never blocks, and the kernel takes the CPU from it only at a tick (every 4 ms
//! at `HZ=250`), so a request thread queued behind it on the same core waits that long, and
//! every connection it serves with it. So a request thread gives way after every
//! [`ANSWERS_PER_TURN`] answers ([`after_answer`], change 30: p99 of hits at 64 connections
//! 3.1–4.8 → 1.8–2.1 ms at the same throughput).
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

/// Answers a request thread sends between two turns it gives away: about a quarter of a
/// millisecond of cache hits. (4 to 64 all measured about 2 ms; 16 against 32 directly, p99
/// 1.83 against 1.97 ms: docs/performance.md, change 30.)
pub const ANSWERS_PER_TURN: u32 = 16;

/// Called on the serving thread after each answer: every [`ANSWERS_PER_TURN`]th one, the thread
/// lets another runnable thread of its core go first (`sched_yield`: EEVDF moves the caller's
/// deadline one slice on). With nothing else runnable the call returns at once, ~0.5 µs per
/// turn.
pub fn after_answer() {
    thread_local!(static SERVED: Cell<u32> = const { Cell::new(0) });
    if SERVED.with(turn_ends) {
        // SAFETY: takes no arguments and only reschedules the calling thread.
        unsafe { libc::sched_yield() };
    }
}

/// Counts one answer; true when it ends the thread's turn.
fn turn_ends(served: &Cell<u32>) -> bool {
    let n = served.get() + 1;
    served.set(n % ANSWERS_PER_TURN);
    n == ANSWERS_PER_TURN
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

    #[test]
    fn a_turn_ends_after_every_sixteenth_answer() {
        let served = Cell::new(0);
        let ends: Vec<usize> = (1..=3 * ANSWERS_PER_TURN as usize)
            .filter(|_| turn_ends(&served))
            .collect();
        assert_eq!(ends, [16, 32, 48]);
    }

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
