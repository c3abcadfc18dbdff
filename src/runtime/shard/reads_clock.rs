//! One clock reading for the lease reads of a client pipeline
//! ([`super::Shard::sharing_one_clock_reading`]).

use std::cell::Cell;

use crate::protocol::Nanos;

/// The clock reading the lease reads answered at once share while the replica does not
/// step ([`super::Shard::sharing_one_clock_reading`]).
#[derive(Debug, Default)]
pub(super) struct ReadsClock(Cell<Reading>);

#[derive(Clone, Copy, Debug, Default)]
enum Reading {
    /// Each read reads the clock.
    #[default]
    Off,
    /// The next read reads the clock, and the ones after it use that reading.
    Open,
    /// The reading the reads use, until the replica steps.
    Taken(Nanos),
}

impl ReadsClock {
    /// Reads from now on share a reading (the first one takes it).
    pub(super) fn open(&self) {
        self.0.set(Reading::Open);
    }

    /// Each read reads the clock again.
    pub(super) fn close(&self) {
        self.0.set(Reading::Off);
    }

    /// The replica is about to step, which may change what a read sees: the next read
    /// takes a new reading.
    pub(super) fn replica_steps(&self) {
        if let Reading::Taken(_) = self.0.get() {
            self.0.set(Reading::Open);
        }
    }

    /// The time a read is checked and served at: the shared reading, or `clock()`.
    pub(super) fn now(&self, clock: impl FnOnce() -> Nanos) -> Nanos {
        match self.0.get() {
            Reading::Off => clock(),
            Reading::Open => {
                let now = clock();
                self.0.set(Reading::Taken(now));
                now
            }
            Reading::Taken(now) => now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reads of a pipeline share the first one's clock reading until the replica
    /// steps; outside a pipeline each read reads the clock.
    #[test]
    fn a_pipelines_reads_share_one_clock_reading_until_the_replica_steps() {
        let clock = ReadsClock::default();
        assert_eq!(clock.now(|| 1), 1);
        assert_eq!(
            clock.now(|| 2),
            2,
            "no pipeline open: every read reads the clock"
        );
        clock.open();
        assert_eq!(clock.now(|| 3), 3);
        assert_eq!(
            clock.now(|| 4),
            3,
            "the pipeline's later reads share the reading"
        );
        clock.replica_steps();
        assert_eq!(
            clock.now(|| 5),
            5,
            "after a step the next read reads the clock"
        );
        assert_eq!(clock.now(|| 6), 5);
        clock.close();
        assert_eq!(clock.now(|| 7), 7);
        clock.replica_steps();
        assert_eq!(
            clock.now(|| 8),
            8,
            "a step outside a pipeline opens nothing"
        );
    }
}
