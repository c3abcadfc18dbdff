//! Peer authentication: a shared cluster key proves, in both directions, that the other end
//! of a peer connection belongs to the cluster.
//!
//! ```text
//! dialer   → acceptor   Hello     { cluster, from, shard, version, dialer nonce }
//! acceptor → dialer     Challenge { acceptor nonce, HMAC(key, "accept" | transcript) }
//! dialer   → acceptor   Proof     { HMAC(key, "dial" | transcript) }
//! ```
//!
//! The transcript holds both nonces (16 fresh random bytes from each side), the Hello's
//! fields and the acceptor's replica id, so a recorded answer is worth nothing on another
//! connection, and the two labels keep one side's answer from serving as the other's. Each
//! side checks the other's HMAC in constant time (`hmac::Mac::verify_slice`). Without a key
//! both sides send no HMAC (`None`), and a side with a key refuses a peer without one.
//!
//! What it does not do: encrypt, or protect frames after the handshake from someone who
//! can rewrite the TCP stream (an on-path attacker could hijack an authenticated
//! connection). Peer ports belong on a private network; the key keeps strangers who merely
//! reach the port from posing as a replica.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::frame::Hello;

/// Bytes of a handshake nonce.
pub const NONCE_BYTES: usize = 16;
/// Bytes of an HMAC-SHA256 tag.
pub const TAG_BYTES: usize = 32;
/// Shortest key accepted: 128 bits.
pub const KEY_BYTES_MIN: usize = 16;
/// Longest key file read (a key is a line of text; this bounds a misnamed file).
pub const KEY_FILE_BYTES_MAX: usize = 4096;

/// A handshake nonce.
pub type Nonce = [u8; NONCE_BYTES];
/// An HMAC-SHA256 tag.
pub type Tag = [u8; TAG_BYTES];

/// The acceptor's answer to a [`Hello`]: its nonce, and its proof that it holds the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// Fresh random bytes the dialer's proof must cover.
    pub nonce: Nonce,
    /// HMAC of the transcript under the "accept" label; `None` when the acceptor has no key.
    pub tag: Option<Tag>,
}

/// The dialer's last handshake frame: its proof that it holds the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    /// HMAC of the transcript under the "dial" label; `None` when the dialer has no key.
    pub tag: Option<Tag>,
}

/// The shared secret of a cluster. Its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterKey(Vec<u8>);

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClusterKey({} bytes)", self.0.len())
    }
}

/// Why a key file's contents are not a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Fewer bytes than [`KEY_BYTES_MIN`] once surrounding whitespace is removed.
    #[error("a cluster key needs at least {KEY_BYTES_MIN} bytes, this one has {0}")]
    TooShort(usize),
    /// More than [`KEY_FILE_BYTES_MAX`].
    #[error("a cluster key file holds at most {KEY_FILE_BYTES_MAX} bytes, this one has {0}")]
    TooLong(usize),
}

/// Which side computes a tag: the labels keep one side's tag from serving as the other's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The side that accepted the connection.
    Acceptor,
    /// The side that dialed.
    Dialer,
}

impl ClusterKey {
    /// The key in a key file's contents: the bytes between leading and trailing whitespace
    /// (so a file written by `echo` or an editor works).
    pub fn from_file_contents(contents: &[u8]) -> Result<ClusterKey, KeyError> {
        if contents.len() > KEY_FILE_BYTES_MAX {
            return Err(KeyError::TooLong(contents.len()));
        }
        let key = contents.trim_ascii();
        if key.len() < KEY_BYTES_MIN {
            return Err(KeyError::TooShort(key.len()));
        }
        Ok(ClusterKey(key.to_vec()))
    }

    fn mac(&self, side: Side, hello: &Hello, acceptor: u8, acceptor_nonce: &Nonce) -> Hmac<Sha256> {
        // HMAC takes a key of any length; this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
        mac.update(match side {
            Side::Acceptor => b"corepax peer handshake v1 accept",
            Side::Dialer => b"corepax peer handshake v1 dial\0\0",
        });
        mac.update(&hello.cluster_id.to_le_bytes());
        mac.update(&[hello.from_replica, acceptor]);
        mac.update(&hello.shard.to_le_bytes());
        mac.update(&hello.protocol_version.to_le_bytes());
        mac.update(&hello.nonce);
        mac.update(acceptor_nonce);
        mac
    }

    /// The tag `side` sends for this handshake.
    pub fn tag(&self, side: Side, hello: &Hello, acceptor: u8, acceptor_nonce: &Nonce) -> Tag {
        self.mac(side, hello, acceptor, acceptor_nonce)
            .finalize()
            .into_bytes()
            .into()
    }

    /// Whether `tag` is the one `side` must send for this handshake (constant time).
    pub fn verify(
        &self,
        side: Side,
        hello: &Hello,
        acceptor: u8,
        acceptor_nonce: &Nonce,
        tag: &Tag,
    ) -> bool {
        self.mac(side, hello, acceptor, acceptor_nonce)
            .verify_slice(tag)
            .is_ok()
    }
}

/// Checks the tag the other side sent against our key: `Ok` when both have a key and the
/// tag verifies, or neither has one; otherwise what is wrong, for the log.
pub fn check_tag(
    key: Option<&ClusterKey>,
    their_side: Side,
    hello: &Hello,
    acceptor: u8,
    acceptor_nonce: &Nonce,
    tag: Option<&Tag>,
) -> Result<(), String> {
    match (key, tag) {
        (None, None) => Ok(()),
        (Some(key), Some(tag)) => {
            if key.verify(their_side, hello, acceptor, acceptor_nonce, tag) {
                Ok(())
            } else {
                Err("wrong cluster key: the handshake's HMAC does not verify".into())
            }
        }
        (Some(_), None) => Err("no cluster key proof, and this node requires one".into()),
        (None, Some(_)) => {
            Err("the peer uses a cluster key and this node has none configured".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame::PROTOCOL_VERSION;

    fn hello() -> Hello {
        Hello {
            cluster_id: 7,
            from_replica: 1,
            shard: 2,
            protocol_version: PROTOCOL_VERSION,
            nonce: [3; NONCE_BYTES],
        }
    }

    fn key(text: &str) -> ClusterKey {
        ClusterKey::from_file_contents(text.as_bytes()).expect("a valid key")
    }

    #[test]
    fn key_files_are_trimmed_and_bounded() {
        assert_eq!(
            key("0123456789abcdef\n"),
            key("  0123456789abcdef"),
            "whitespace around the key is not part of it"
        );
        assert_eq!(
            ClusterKey::from_file_contents(b"short\n"),
            Err(KeyError::TooShort(5))
        );
        assert!(matches!(
            ClusterKey::from_file_contents(&[b'a'; KEY_FILE_BYTES_MAX + 1]),
            Err(KeyError::TooLong(_))
        ));
        assert!(!format!("{:?}", key("0123456789abcdef")).contains("0123"));
    }

    #[test]
    fn a_tag_verifies_only_for_its_key_side_and_transcript() {
        let k = key("0123456789abcdef0123");
        let h = hello();
        let nonce = [9; NONCE_BYTES];
        let tag = k.tag(Side::Dialer, &h, 0, &nonce);
        assert!(k.verify(Side::Dialer, &h, 0, &nonce, &tag));
        assert!(!k.verify(Side::Acceptor, &h, 0, &nonce, &tag), "other side");
        assert!(!key("0123456789abcdef0124").verify(Side::Dialer, &h, 0, &nonce, &tag));
        assert!(
            !k.verify(Side::Dialer, &h, 2, &nonce, &tag),
            "other acceptor"
        );
        assert!(
            !k.verify(Side::Dialer, &h, 0, &[8; NONCE_BYTES], &tag),
            "other acceptor nonce"
        );
        let other = Hello {
            nonce: [4; NONCE_BYTES],
            ..h
        };
        assert!(
            !k.verify(Side::Dialer, &other, 0, &nonce, &tag),
            "other dialer nonce"
        );
        let other = Hello {
            from_replica: 2,
            ..h
        };
        assert!(
            !k.verify(Side::Dialer, &other, 0, &nonce, &tag),
            "other dialer"
        );
    }

    #[test]
    fn check_tag_needs_keys_on_both_sides_or_neither() {
        let k = key("0123456789abcdef0123");
        let h = hello();
        let nonce = [9; NONCE_BYTES];
        let tag = k.tag(Side::Acceptor, &h, 0, &nonce);
        assert!(check_tag(Some(&k), Side::Acceptor, &h, 0, &nonce, Some(&tag)).is_ok());
        assert!(check_tag(None, Side::Acceptor, &h, 0, &nonce, None).is_ok());
        assert!(check_tag(Some(&k), Side::Acceptor, &h, 0, &nonce, None).is_err());
        assert!(check_tag(None, Side::Acceptor, &h, 0, &nonce, Some(&tag)).is_err());
        let wrong = [0; TAG_BYTES];
        assert!(check_tag(Some(&k), Side::Acceptor, &h, 0, &nonce, Some(&wrong)).is_err());
    }
}
