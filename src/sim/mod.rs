//! Deterministic simulator of a corepax cluster, and its checkers.
