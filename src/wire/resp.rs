//! RESP2 encoding and incremental decoding.
