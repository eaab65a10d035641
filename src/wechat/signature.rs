//! SHA-1 request signatures (PROTOCOL.md §0.1, §1.1, §1.5).
//!
//! `signature = sha1_hex(concat(sort([token, timestamp, nonce])))`; the
//! `msg_signature` of safe mode / WeCom adds the `Encrypt` (or `echostr`)
//! value as a fourth part. The sort is plain byte-wise lexicographic and the
//! parts are concatenated without a separator.

use sha1::{Digest, Sha1};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Signs `parts`: sorts them byte-wise, concatenates them, hashes with SHA-1
/// and returns the digest as 40 lowercase hex characters.
pub fn sign(parts: &[&str]) -> String {
    let mut sorted: Vec<&str> = parts.to_vec();
    sorted.sort_unstable();
    let mut hasher = Sha1::new();
    for part in sorted {
        hasher.update(part.as_bytes());
    }
    to_hex(&hasher.finalize())
}

/// Checks `expected_hex` (as received, upper or lower case) against
/// [`sign`]`(parts)` in constant time with respect to the digest contents.
pub fn verify(expected_hex: &str, parts: &[&str]) -> bool {
    let actual = sign(parts);
    constant_time_eq_ignore_ascii_case(expected_hex.as_bytes(), actual.as_bytes())
}

/// Lowercase hex encoding.
fn to_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

/// Compares two byte strings without an early exit on the first difference.
/// The length is not secret (a SHA-1 hex digest is always 40 bytes), so a
/// length mismatch returns immediately.
fn constant_time_eq_ignore_ascii_case(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| {
        acc | (x.to_ascii_lowercase() ^ y.to_ascii_lowercase())
    });
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v0_official_doc_signature() {
        let sig = sign(&["AAAAA", "1714036504", "1514711492"]);
        assert_eq!(sig, "f464b24fc39322e44b38aa78f5edd27bd1441696");
        assert!(verify(&sig, &["1514711492", "AAAAA", "1714036504"]));
    }

    #[test]
    fn v1_official_doc_second_signature() {
        assert_eq!(
            sign(&["AAAAA", "1714037059", "486452656"]),
            "899cf89e464efb63f54ddac96b0a0a235f53aa78"
        );
    }

    #[test]
    fn v1_wechatpy_signature_and_must_fail_variant() {
        let parts = ["test", "1410685589", "test"];
        assert!(verify("f21891de399b4e33a1a93c9a7b8a8fffb5a443ff", &parts));
        assert!(!verify("f21891de399b4e33a1a93c9a7b8a8fffb5a443fe", &parts));
    }

    #[test]
    fn silenceper_abc_signature() {
        assert_eq!(
            sign(&["a", "b", "c"]),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }

    #[test]
    fn verify_accepts_uppercase_hex() {
        assert!(verify(
            "F464B24FC39322E44B38AA78F5EDD27BD1441696",
            &["AAAAA", "1714036504", "1514711492"]
        ));
    }

    #[test]
    fn verify_rejects_wrong_length_and_empty() {
        let parts = ["AAAAA", "1714036504", "1514711492"];
        assert!(!verify("", &parts));
        assert!(!verify("f464b24fc39322e44b38aa78f5edd27bd144169", &parts));
        assert!(!verify("f464b24fc39322e44b38aa78f5edd27bd14416966", &parts));
        // Same length, non-hex garbage.
        assert!(!verify("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", &parts));
    }

    #[test]
    fn sort_is_bytewise_not_numeric() {
        // "10" < "9" byte-wise; a numeric sort would put 9 first.
        assert_eq!(sign(&["9", "10"]), sign(&["10", "9"]));
        let mut h = Sha1::new();
        h.update(b"109");
        assert_eq!(sign(&["9", "10"]), to_hex(&h.finalize()));
    }
}
