//! How long one thread takes to wake another on a different core, the step every hop of a
//! replicated write takes (client → leader → followers → leader → client), and what the
//! kernel's idle loop does about it. On some virtual machines an idle vCPU halts and
//! takes tens of µs to run again when woken; a guest whose idle loop polls first
//! (`cpuidle-haltpoll`, `guest_halt_poll_ns`) wakes in a few µs. A result records both, so
//! a reader can tell a slow hop from a slow node (results/vm-idle-wake-20261207/).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Instant;

/// The median round trip (µs) of `rounds` one-byte ping-pongs between two threads on
/// the first two cores this process may use, each blocking in `read` for the other's
/// `write`: two wake-ups of a sleeping thread on the other core. None with fewer than
/// two cores or if the threads cannot be pinned.
pub fn round_trip_us(rounds: usize) -> Option<f64> {
    probe(rounds).map(|p| p.round_trip_us)
}

/// What [`probe`] measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WakeProbe {
    /// The median round trip (µs).
    pub round_trip_us: f64,
    /// CPU time (user + system) both threads were charged per round trip (µs): where an
    /// idle core's wake-up is slow, the woken thread pays for it too.
    pub cpu_us: f64,
}

/// [`round_trip_us`], with the CPU both threads used.
pub fn probe(rounds: usize) -> Option<WakeProbe> {
    let [a, b] = first_two_cores()?;
    if rounds == 0 {
        return None;
    }
    let (mut ping, mut pong) = UnixStream::pair().ok()?;
    let echo = std::thread::spawn(move || -> Option<f64> {
        pin_to(b)?;
        let cpu = thread_cpu_us();
        let mut b = [0u8; 1];
        for _ in 0..rounds {
            pong.read_exact(&mut b).ok()?;
            pong.write_all(&b).ok()?;
        }
        Some(thread_cpu_us() - cpu)
    });
    let timed = (|| {
        pin_to(a)?;
        let cpu = thread_cpu_us();
        let mut times = Vec::with_capacity(rounds);
        let mut b = [0u8; 1];
        for _ in 0..rounds {
            let t = Instant::now();
            ping.write_all(&b).ok()?;
            ping.read_exact(&mut b).ok()?;
            times.push(t.elapsed().as_secs_f64() * 1e6);
        }
        Some((times, thread_cpu_us() - cpu))
    })();
    // Unblocks the echo thread if this side stopped early.
    drop(ping);
    let echo_cpu = echo.join().ok().flatten();
    let (mut times, cpu) = timed?;
    let echo_cpu = echo_cpu?;
    times.sort_by(f64::total_cmp);
    Some(WakeProbe {
        round_trip_us: times[times.len() / 2],
        cpu_us: (cpu + echo_cpu) / rounds as f64,
    })
}

/// The calling thread's CPU time so far (user + system, µs).
fn thread_cpu_us() -> f64 {
    let (user, system) = crate::runtime::thread_cpu_s();
    (user + system) * 1e6
}

/// The two lowest-numbered cores this process may use.
fn first_two_cores() -> Option<[usize; 2]> {
    match crate::runtime::affinity::process_cores()[..] {
        [a, b, ..] => Some([a, b]),
        _ => None,
    }
}

/// Pins the calling thread to one core.
fn pin_to(core: usize) -> Option<()> {
    crate::runtime::affinity::set_thread_cores(&[core]).ok()
}

/// The kernel's idle driver and, for `haltpoll` (a KVM guest's), how long an idle vCPU
/// polls before it halts (`guest_halt_poll_ns`; 0: it halts at once), e.g.
/// `haltpoll, guest_halt_poll_ns 0`. None where sysfs does not say.
pub fn cpuidle() -> Option<String> {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    let driver = read("/sys/devices/system/cpu/cpuidle/current_driver")?;
    Some(
        match read("/sys/module/haltpoll/parameters/guest_halt_poll_ns") {
            Some(ns) if driver == "haltpoll" => format!("{driver}, guest_halt_poll_ns {ns}"),
            _ => driver,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_trip_is_measured_on_two_cores() {
        match probe(50) {
            // Two wake-ups take more than nothing and, even on a busy machine running
            // the other tests, far less than a second; CPU time is never negative.
            Some(p) => assert!(
                p.round_trip_us > 0.0 && p.round_trip_us < 1e6 && p.cpu_us >= 0.0,
                "{p:?}"
            ),
            None => assert!(first_two_cores().is_none()),
        }
        assert_eq!(round_trip_us(0), None);
    }
}
