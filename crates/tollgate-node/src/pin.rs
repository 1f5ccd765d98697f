//! Certificate pinning: the agent's TLS certificate named by its SHA-256 fingerprint.
//!
//! Why pinning instead of a CA: an agent's certificate is self-signed (created on its first
//! start, see the crate README), so no public root vouches for it. The operator copies the
//! fingerprint the agent prints into the service's catalog (`agent_cert_sha256`), and the
//! client then accepts exactly that certificate and nothing else.
//!
//! What [`PinnedVerifier`] checks: the SHA-256 of the end-entity certificate's DER equals
//! the pin, and the handshake signature verifies with that certificate's key (so a peer that
//! merely replays the certificate without its private key fails). It does not check the
//! hostname, the chain or the validity dates: the pin names one certificate, and an IP
//! address or a renamed host does not change who holds its key. The comparison is not
//! constant-time: both fingerprints are public.

use std::fmt;
use std::sync::Arc;

use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{
    CryptoProvider, verify_tls12_signature, verify_tls13_signature,
};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{DigitallySignedStruct, Error, OtherError, SignatureScheme};

/// The SHA-256 fingerprint of a certificate's DER encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertFingerprint([u8; 32]);

impl CertFingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> CertFingerprint {
        CertFingerprint(Sha256::digest(der).into())
    }

    /// Reads `AB:CD:…` (32 colon-separated pairs, as `openssl x509 -fingerprint -sha256`
    /// prints it) or 64 hex digits, in either case. The error says what was wrong and what
    /// the two accepted forms look like.
    pub fn parse(text: &str) -> Result<CertFingerprint, String> {
        let text = text.trim();
        let digits: String = if text.contains(':') {
            let pairs: Vec<&str> = text.split(':').collect();
            if pairs.len() != 32 || pairs.iter().any(|p| p.len() != 2) {
                return Err(format!(
                    "{text:?} is not a SHA-256 fingerprint: with colons it is 32 pairs of hex digits (AB:CD:…), found {} parts",
                    pairs.len()
                ));
            }
            pairs.concat()
        } else {
            text.to_owned()
        };
        if digits.len() != 64 {
            return Err(format!(
                "{text:?} is not a SHA-256 fingerprint: it has {} characters; give 64 hex digits or 32 colon-separated pairs (AB:CD:…)",
                digits.len()
            ));
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            let pair = digits.get(2 * i..2 * i + 2).unwrap_or("");
            *byte = u8::from_str_radix(pair, 16).map_err(|_| {
                format!("{text:?} is not a SHA-256 fingerprint: {pair:?} is not a hex byte")
            })?;
        }
        Ok(CertFingerprint(bytes))
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// `AB:CD:…`: upper case, colon-separated, the form the agent prints and `openssl` shows.
impl fmt::Display for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertFingerprint({self})")
    }
}

impl std::str::FromStr for CertFingerprint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CertFingerprint::parse(s)
    }
}

impl Serialize for CertFingerprint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The agent presented another certificate than the pinned one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinMismatch {
    /// Who the client talks to (the node's name in the service's catalog).
    pub node: String,
    pub expected: CertFingerprint,
    pub presented: CertFingerprint,
}

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "node {}: the agent presented a TLS certificate with SHA-256 {}, but agent_cert_sha256 expects {}; if the agent's certificate was replaced on purpose, set agent_cert_sha256 = \"{}\" (check it with `tollgate-node fingerprint` on the node), otherwise something else answers at this address",
            self.node, self.presented, self.expected, self.presented
        )
    }
}

impl std::error::Error for PinMismatch {}

/// A rustls verifier that accepts exactly one certificate (see the module docs).
#[derive(Debug)]
pub struct PinnedVerifier {
    node: String,
    pin: CertFingerprint,
    provider: Arc<CryptoProvider>,
}

impl PinnedVerifier {
    pub fn new(
        node: impl Into<String>,
        pin: CertFingerprint,
        provider: Arc<CryptoProvider>,
    ) -> Self {
        PinnedVerifier {
            node: node.into(),
            pin,
            provider,
        }
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let presented = CertFingerprint::of_der(end_entity.as_ref());
        if presented == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(Error::Other(OtherError(Arc::new(PinMismatch {
                node: self.node.clone(),
                expected: self.pin,
                presented,
            }))))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Finds a [`PinMismatch`] in an error's source chain. The connector carries rustls' error
/// out inside `io::Error`s (nested), whose `source()` skips the error they hold, so those are
/// opened with `get_ref()` instead.
pub fn find_mismatch(error: &(dyn std::error::Error + 'static)) -> Option<PinMismatch> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(found) = mismatch_in(e) {
            return Some(found);
        }
        current = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

fn mismatch_in(e: &(dyn std::error::Error + 'static)) -> Option<PinMismatch> {
    if let Some(found) = e.downcast_ref::<PinMismatch>() {
        return Some(found.clone());
    }
    match e.downcast_ref::<Error>() {
        Some(Error::Other(OtherError(inner))) => inner.downcast_ref::<PinMismatch>().cloned(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";

    #[test]
    fn both_forms_parse_in_either_case_and_print_with_colons() {
        let plain = CertFingerprint::parse(HEX).unwrap();
        let colons = plain.to_string();
        assert_eq!(
            colons,
            "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF"
        );
        assert_eq!(CertFingerprint::parse(&colons).unwrap(), plain);
        assert_eq!(
            CertFingerprint::parse(&colons.to_lowercase()).unwrap(),
            plain
        );
        assert_eq!(CertFingerprint::parse(&format!(" {HEX}\n")).unwrap(), plain);
    }

    #[test]
    fn malformed_fingerprints_say_what_is_wrong() {
        let e = CertFingerprint::parse("abcd").unwrap_err();
        assert!(
            e.contains("4 characters") && e.contains("64 hex digits"),
            "{e}"
        );
        let e = CertFingerprint::parse(&HEX.replace('a', "g")).unwrap_err();
        assert!(e.contains("not a hex byte"), "{e}");
        let e = CertFingerprint::parse("AB:CD:EF").unwrap_err();
        assert!(e.contains("32 pairs") && e.contains("found 3 parts"), "{e}");
        let e = CertFingerprint::parse(&format!("{HEX}00")).unwrap_err();
        assert!(e.contains("66 characters"), "{e}");
        let e = CertFingerprint::parse(&format!("sha256:{HEX}")).unwrap_err();
        assert!(e.contains("32 pairs"), "{e}");
    }

    #[test]
    fn a_mismatch_names_the_node_and_both_fingerprints() {
        let expected = CertFingerprint::parse(HEX).unwrap();
        let presented = CertFingerprint::of_der(b"another certificate");
        let text = PinMismatch {
            node: "nl-1".into(),
            expected,
            presented,
        }
        .to_string();
        assert!(text.starts_with("node nl-1: "), "{text}");
        assert!(
            text.contains(&expected.to_string()) && text.contains(&presented.to_string()),
            "{text}"
        );
        // As the connector delivers it: rustls' error in an io::Error in another.
        let wrapped = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            Error::Other(OtherError(Arc::new(PinMismatch {
                node: "nl-1".into(),
                expected,
                presented,
            }))),
        ));
        assert_eq!(
            find_mismatch(&wrapped).map(|m| m.presented),
            Some(presented)
        );
    }
}
