//! The server's side of SCRAM-SHA-256 (RFC 5802, RFC 7677) checked against a stored verifier.
//!
//! pgwire frames the exchange (the SASL messages of the start-up) and derives verifiers from
//! passwords, but its own check needs the salted password, which logs in as well as the password
//! does. PostgreSQL keeps only `StoredKey` and `ServerKey`, and so does ebiq's users file: the
//! client's proof is checked here from those two, as RFC 5802 section 3 describes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::users::{Verifier, hmac_sha256, sha256};

/// Why an exchange failed. Either way the client learns only that the login failed.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ScramError {
    /// The message is not SCRAM's (SQLSTATE 08P01).
    Malformed(&'static str),
    /// The proof does not match, or there is no such user (SQLSTATE 28P01).
    Refused,
}

/// The attribute `key` of a SCRAM message (`r=...`).
fn attribute(message: &str, key: char) -> Option<&str> {
    message.split(',').find_map(|part| {
        let mut chars = part.chars();
        (chars.next() == Some(key) && chars.next() == Some('=')).then(|| &part[2..])
    })
}

/// The exchange after the server's first message, waiting for the client's final one.
#[derive(Debug)]
pub(super) struct AwaitingProof {
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    verifier: Verifier,
    /// False for a user that does not exist: the exchange runs to its end and fails there, so
    /// that no one learns which names exist.
    known: bool,
}

/// Answers the client's first message with the server's (`r=...,s=...,i=...`).
pub(super) fn server_first(
    client_first: &str,
    verifier: Verifier,
    known: bool,
) -> Result<(String, AwaitingProof), ScramError> {
    // gs2-header: "n,," (no channel binding) or "y,," (client could, server did not offer);
    // "p=..." asks for binding that was not offered.
    let (cbind, rest) = client_first
        .split_once(',')
        .ok_or(ScramError::Malformed("no GS2 header"))?;
    if !matches!(cbind, "n" | "y") {
        return Err(ScramError::Malformed("channel binding was not offered"));
    }
    let (_authzid, bare) = rest
        .split_once(',')
        .ok_or(ScramError::Malformed("no GS2 header"))?;
    let gs2_header = client_first[..client_first.len() - bare.len()].to_owned();
    let client_nonce = attribute(bare, 'r')
        .filter(|nonce| {
            !nonce.is_empty() && nonce.chars().all(|c| c.is_ascii_graphic() && c != ',')
        })
        .ok_or(ScramError::Malformed("no client nonce"))?;
    let server_nonce = BASE64.encode(rand::random::<[u8; 18]>());
    let nonce = format!("{client_nonce}{server_nonce}");
    let server_first = format!(
        "r={nonce},s={},i={}",
        BASE64.encode(&verifier.salt),
        verifier.iterations
    );
    Ok((
        server_first.clone(),
        AwaitingProof {
            gs2_header,
            client_first_bare: bare.to_owned(),
            server_first,
            nonce,
            verifier,
            known,
        },
    ))
}

/// Equal, taking the same time wherever the first difference is.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl AwaitingProof {
    /// Checks the client's final message (`c=...,r=...,p=...`) and gives the server's final one
    /// (`v=...`, which proves to the client that the server holds the verifier).
    pub(super) fn server_final(&self, client_final: &str) -> Result<String, ScramError> {
        let (without_proof, proof) = client_final
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("no proof"))?;
        let proof = BASE64
            .decode(proof)
            .map_err(|_| ScramError::Malformed("the proof is not base64"))?;
        let binding = attribute(without_proof, 'c').ok_or(ScramError::Malformed("no binding"))?;
        if binding != BASE64.encode(&self.gs2_header) {
            return Err(ScramError::Malformed("the channel binding differs"));
        }
        if attribute(without_proof, 'r') != Some(self.nonce.as_str()) {
            return Err(ScramError::Malformed("the nonce differs"));
        }
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let client_signature = hmac_sha256(&self.verifier.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(ScramError::Refused);
        }
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        if !same_bytes(&sha256(&client_key), &self.verifier.stored_key) || !self.known {
            return Err(ScramError::Refused);
        }
        let server_signature = hmac_sha256(&self.verifier.server_key, auth_message.as_bytes());
        Ok(format!("v={}", BASE64.encode(server_signature)))
    }
}

/// A verifier for a name that is not in the users file: it matches no password, and its salt is
/// the same on every attempt (derived from the name and a secret of this server's run), as a real
/// user's would be.
pub(super) fn unknown_user_verifier(name: &str, run_secret: &[u8]) -> Verifier {
    let mut keyed = run_secret.to_vec();
    keyed.extend_from_slice(name.as_bytes());
    let digest = sha256(&keyed);
    Verifier {
        iterations: super::users::ITERATIONS,
        salt: digest[..16].to_vec(),
        stored_key: sha256(&digest),
        server_key: digest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 section 3's example exchange: user "user", password "pencil".
    const SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
    const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const FULL_NONCE: &str = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                                p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn rfc_exchange(verifier: Verifier, known: bool) -> AwaitingProof {
        let (first, mut awaiting) = server_first(CLIENT_FIRST, verifier, known).expect("valid");
        assert!(first.starts_with(&format!("r={CLIENT_NONCE}")), "{first}");
        assert!(first.ends_with(&format!(",s={SALT},i=4096")), "{first}");
        // The RFC's server nonce, in place of this run's random one.
        awaiting.nonce = FULL_NONCE.to_owned();
        awaiting.server_first = format!("r={FULL_NONCE},s={SALT},i=4096");
        awaiting
    }

    fn pencil() -> Verifier {
        Verifier::of_password("pencil", &BASE64.decode(SALT).expect("base64"), 4096)
    }

    #[test]
    fn rfc_7677_s_exchange_is_accepted_with_its_server_signature() {
        let awaiting = rfc_exchange(pencil(), true);
        assert_eq!(
            awaiting.server_final(CLIENT_FINAL).as_deref(),
            Ok(SERVER_FINAL)
        );
    }

    #[test]
    fn a_wrong_password_an_unknown_user_and_tampering_are_refused() {
        let wrong = Verifier::of_password("pencils", &BASE64.decode(SALT).expect("b64"), 4096);
        assert_eq!(
            rfc_exchange(wrong, true).server_final(CLIENT_FINAL),
            Err(ScramError::Refused)
        );
        assert_eq!(
            rfc_exchange(pencil(), false).server_final(CLIENT_FINAL),
            Err(ScramError::Refused),
            "even the right proof fails for a name not in the file"
        );
        let other_nonce = CLIENT_FINAL.replace("k0,", "k1,");
        assert!(matches!(
            rfc_exchange(pencil(), true).server_final(&other_nonce),
            Err(ScramError::Malformed(_))
        ));
        assert!(matches!(
            server_first("p=tls-server-end-point,,n=,r=abc", pencil(), true),
            Err(ScramError::Malformed(_))
        ));
        assert!(matches!(
            server_first("garbage", pencil(), true),
            Err(ScramError::Malformed(_))
        ));
    }

    #[test]
    fn an_unknown_name_gets_the_same_salt_each_time() {
        let a = unknown_user_verifier("mallory", b"secret");
        assert_eq!(a, unknown_user_verifier("mallory", b"secret"));
        assert_ne!(a.salt, unknown_user_verifier("trent", b"secret").salt);
    }
}
