//! Byte formats: RESP for clients, checksummed frames for peers. Pure encode/decode.
pub mod auth;
pub mod command;
pub mod frame;
pub mod resp;
