//! Peer frames: length, checksum, postcard payload.
