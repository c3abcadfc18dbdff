//! How fast this machine's cores wake each other (`corepax::loadgen::wake`): the median
//! round trip of two threads on two cores waking each other, the CPU both were charged
//! per round trip, and the kernel's idle driver. scripts/floor.sh prints it with its
//! machine facts.
//!
//! target/release/examples/wakeprobe [ROUNDS]   (default 2000)
use corepax::loadgen::wake;

fn main() {
    let rounds = std::env::args()
        .nth(1)
        .and_then(|r| r.parse().ok())
        .unwrap_or(2000);
    let idle = wake::cpuidle().unwrap_or_else(|| "unknown".into());
    match wake::probe(rounds) {
        Some(p) => println!(
            "wake-up round trip between two cores {:.1} µs (median of {rounds}), {:.1} µs of CPU per round trip; idle driver: {idle}",
            p.round_trip_us, p.cpu_us
        ),
        None => {
            println!("wake-up round trip: not measured (fewer than two cores); idle driver: {idle}")
        }
    }
}
