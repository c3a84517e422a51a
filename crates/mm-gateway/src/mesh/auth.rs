//! Mesh links authenticated by a shared secret: a challenge–response in the handshake, with
//! HMAC-SHA256 over nonces from both sides bound to both gateway ids, the service and the
//! direction (docs/protocol.md, "Authenticated mesh links"). The secret never crosses the wire.
//!
//! ```text
//! dialler D                                              acceptor A
//!   CONNECT_MESH_PEER {gateway_id: idD, auth_nonce: nD}  ──▶
//!                ◀── ACK {gateway_id: idA, auth_nonce: nA, auth_proof: HMAC(K, "acceptor", T)}
//!   (D checks A's proof: A knows K, this exchange, now)
//!   CONNECT_MESH_PEER {auth_proof: HMAC(K, "dialler", T)} ──▶  (A checks; the link is live)
//!
//!   T = service, idD, idA, nD, nA   (each length-prefixed)
//! ```
//!
//! Each side's proof covers the other side's fresh nonce, so a recorded exchange is worthless
//! later (replay); the direction label makes an acceptor's proof useless as a dialler's
//! (reflection); the ids and the service bind the proof to this pair of gateways and this mesh.

use ring::hmac;

/// Bytes of a nonce.
pub(crate) const NONCE_BYTES: usize = 32;

/// Which side computes a proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The gateway that dialled.
    Dialler,
    /// The gateway that accepted.
    Acceptor,
}

impl Side {
    fn label(self) -> &'static [u8] {
        match self {
            Side::Dialler => b"messaging-mesh link v1 dialler",
            Side::Acceptor => b"messaging-mesh link v1 acceptor",
        }
    }
}

/// What a proof covers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Transcript<'a> {
    /// The service of the link.
    pub(crate) service: &'a str,
    /// The dialler's gateway id.
    pub(crate) dialler_id: &'a str,
    /// The acceptor's gateway id.
    pub(crate) acceptor_id: &'a str,
    /// The dialler's nonce.
    pub(crate) dialler_nonce: &'a [u8],
    /// The acceptor's nonce.
    pub(crate) acceptor_nonce: &'a [u8],
}

/// The mesh secret, as an HMAC key.
pub(crate) struct MeshSecret {
    key: hmac::Key,
}

impl std::fmt::Debug for MeshSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MeshSecret(..)")
    }
}

impl MeshSecret {
    /// A key from the secret's bytes.
    pub(crate) fn new(secret: &[u8]) -> MeshSecret {
        MeshSecret {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// The bytes a proof signs: the side's label and the transcript, each length-prefixed.
    fn signed_bytes(side: Side, transcript: &Transcript<'_>) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(256);
        for part in [
            side.label(),
            transcript.service.as_bytes(),
            transcript.dialler_id.as_bytes(),
            transcript.acceptor_id.as_bytes(),
            transcript.dialler_nonce,
            transcript.acceptor_nonce,
        ] {
            bytes.extend_from_slice(&(part.len() as u32).to_le_bytes());
            bytes.extend_from_slice(part);
        }
        bytes
    }

    /// `side`'s proof over `transcript`.
    pub(crate) fn proof(&self, side: Side, transcript: &Transcript<'_>) -> Vec<u8> {
        hmac::sign(&self.key, &Self::signed_bytes(side, transcript))
            .as_ref()
            .to_vec()
    }

    /// Whether `proof` is `side`'s proof over `transcript` (compared in constant time).
    pub(crate) fn verify(&self, side: Side, transcript: &Transcript<'_>, proof: &[u8]) -> bool {
        hmac::verify(&self.key, &Self::signed_bytes(side, transcript), proof).is_ok()
    }
}

/// A fresh nonce from the operating system's secure random source.
pub(crate) fn nonce() -> Vec<u8> {
    use rand::RngCore;
    let mut bytes = vec![0u8; NONCE_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcript<'a>(nd: &'a [u8], na: &'a [u8]) -> Transcript<'a> {
        Transcript {
            service: "VULCAN",
            dialler_id: "d1",
            acceptor_id: "a1",
            dialler_nonce: nd,
            acceptor_nonce: na,
        }
    }

    #[test]
    fn proofs_bind_side_ids_nonces_and_secret() {
        let secret = MeshSecret::new(b"correct horse battery staple");
        let (nd, na) = (nonce(), nonce());
        let t = transcript(&nd, &na);
        let proof = secret.proof(Side::Dialler, &t);
        assert!(secret.verify(Side::Dialler, &t, &proof));
        // Reflection: an acceptor's proof is not a dialler's.
        assert!(!secret.verify(Side::Acceptor, &t, &proof));
        // Replay: a new acceptor nonce needs a new proof.
        let fresh = nonce();
        assert!(!secret.verify(Side::Dialler, &transcript(&nd, &fresh), &proof));
        // Another pair of ids, another service, another secret.
        let other_ids = Transcript {
            acceptor_id: "a2",
            ..t
        };
        assert!(!secret.verify(Side::Dialler, &other_ids, &proof));
        let other_service = Transcript {
            service: "OTHER",
            ..t
        };
        assert!(!secret.verify(Side::Dialler, &other_service, &proof));
        assert!(!MeshSecret::new(b"wrong").verify(Side::Dialler, &t, &proof));
        assert!(!secret.verify(Side::Dialler, &t, &proof[..31]));
        // Fields are length-prefixed: moving bytes between them changes the proof.
        let shifted = Transcript {
            dialler_id: "d1a",
            acceptor_id: "1",
            ..t
        };
        assert!(!secret.verify(Side::Dialler, &shifted, &proof));
        assert_ne!(nonce(), nonce());
    }
}
