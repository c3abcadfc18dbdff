//! Scenario tests of the Raft core, driven by hand.
