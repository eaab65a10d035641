//! WXBizMsgCrypt message encryption (PROTOCOL.md §1.3–§1.5).
//!
//! Frame: `P = random16 ‖ u32be(len(msg)) ‖ msg ‖ receive_id`, PKCS#7-padded
//! to a **32-byte** block, AES-256-CBC with `IV = key[..16]`, then base64.
//! `receive_id` is the appid (Official Account) or corpid / suite id (WeCom).
//!
//! Decryption never panics: every malformed input maps to a [`CryptoError`]
//! the HTTP layer turns into a 4xx. Size limits are the HTTP layer's job.

use std::fmt;

use aes::Aes256;
use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};

use super::signature;

/// WeChat pads to 32 bytes, not to the AES block size (PROTOCOL.md §0.3).
const PAD_BLOCK: usize = 32;
/// AES block size; a ciphertext must be a non-empty multiple of it.
const AES_BLOCK: usize = 16;
/// 16 random bytes followed by the u32 big-endian message length.
const HEADER_LEN: usize = 20;

/// Decoder for the 43-character EncodingAESKey: the last character carries
/// non-zero trailing bits in every official key, which `STANDARD` rejects.
const KEY_ENGINE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Errors of signature checking, key parsing and message decryption.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// The plain `signature` (token, timestamp, nonce) does not match.
    #[error("signature mismatch")]
    BadSignature,
    /// The `msg_signature` (token, timestamp, nonce, Encrypt/echostr) does not match.
    #[error("msg_signature mismatch")]
    BadMsgSignature,
    /// The configured EncodingAESKey is unusable; the text says why.
    #[error("invalid EncodingAESKey: {0}")]
    InvalidKey(&'static str),
    /// The encrypted payload is not valid standard base64.
    #[error("encrypted payload is not valid base64")]
    Base64,
    /// The ciphertext is empty or not a multiple of the 16-byte AES block.
    #[error("ciphertext is empty or not a multiple of the AES block size (16 bytes)")]
    BlockSize,
    /// The PKCS#7 pad byte (shown) is outside `1..=32` or the padding is inconsistent.
    #[error("invalid padding: pad byte {0}, expected 1..=32 repeated (wrong EncodingAESKey?)")]
    Padding(u8),
    /// The frame is shorter than its 20-byte header or its message length
    /// points beyond the buffer.
    #[error(
        "decrypted frame too short or message length beyond the buffer (wrong EncodingAESKey?)"
    )]
    Length,
    /// The receive id in the frame is not the configured appid / corpid.
    #[error("receive id in the message does not match the configured appid/corpid")]
    ReceiveId,
    /// The decrypted message (or receive id) is not valid UTF-8.
    #[error("decrypted message is not valid UTF-8")]
    Utf8,
}

/// The 32-byte AES key decoded from a 43-character EncodingAESKey.
#[derive(Clone)]
pub struct AesKey([u8; 32]);

impl AesKey {
    /// Decodes `EncodingAESKey` (exactly 43 base64 characters, trailing bits
    /// in the last character allowed) into the 32-byte AES key.
    pub fn from_encoding_aes_key(s: &str) -> Result<Self, CryptoError> {
        if s.len() != 43 {
            return Err(CryptoError::InvalidKey("must be exactly 43 characters"));
        }
        let bytes = KEY_ENGINE
            .decode(s)
            .map_err(|_| CryptoError::InvalidKey("not valid base64"))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CryptoError::InvalidKey("does not decode to 32 bytes"))?;
        Ok(Self(key))
    }

    /// The CBC initialisation vector: the first 16 key bytes.
    fn iv(&self) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&self.0[..16]);
        iv
    }
}

impl fmt::Debug for AesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AesKey(***)")
    }
}

/// Encrypts a raw frame; `frame` must already be padded to a multiple of 16.
fn aes_encrypt(key: &AesKey, frame: &[u8]) -> Vec<u8> {
    let iv = key.iv();
    cbc::Encryptor::<Aes256>::new(&key.0.into(), &iv.into()).encrypt_padded_vec::<NoPadding>(frame)
}

/// Builds, pads, encrypts and base64-encodes a frame for `msg` and
/// `receive_id` with the given 16 "random" bytes (fixed in tests).
pub fn encrypt_raw(key: &AesKey, msg: &str, receive_id: &str, random: &[u8; 16]) -> String {
    let body_len = HEADER_LEN + msg.len() + receive_id.len();
    let pad = PAD_BLOCK - body_len % PAD_BLOCK; // 1..=32, never 0
    let mut frame = Vec::with_capacity(body_len + pad);
    frame.extend_from_slice(random);
    // A message longer than u32::MAX bytes cannot be framed; the HTTP layer
    // caps sizes far below that, so saturating here only guards the cast.
    let len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(msg.as_bytes());
    frame.extend_from_slice(receive_id.as_bytes());
    // `pad` is at most 32, so the cast is lossless.
    frame.resize(body_len + pad, pad as u8);
    STANDARD.encode(aes_encrypt(key, &frame))
}

/// A decrypted frame: the unpadded plaintext and where the message ends.
struct Frame {
    plain: Vec<u8>,
    msg_end: usize,
}

impl Frame {
    fn msg(&self) -> &[u8] {
        self.plain.get(HEADER_LEN..self.msg_end).unwrap_or_default()
    }

    fn receive_id(&self) -> &[u8] {
        self.plain.get(self.msg_end..).unwrap_or_default()
    }
}

/// Base64-decodes, decrypts, unpads and splits a frame without checking the
/// receive id.
fn open(key: &AesKey, encrypt_b64: &str) -> Result<Frame, CryptoError> {
    let cipher = STANDARD
        .decode(encrypt_b64.trim())
        .map_err(|_| CryptoError::Base64)?;
    if cipher.is_empty() || cipher.len() % AES_BLOCK != 0 {
        return Err(CryptoError::BlockSize);
    }
    let iv = key.iv();
    let mut plain = cbc::Decryptor::<Aes256>::new(&key.0.into(), &iv.into())
        .decrypt_padded_vec::<NoPadding>(&cipher)
        .map_err(|_| CryptoError::BlockSize)?;

    let pad = plain.last().copied().ok_or(CryptoError::BlockSize)?;
    let pad_len = usize::from(pad);
    if !(1..=PAD_BLOCK).contains(&pad_len) || pad_len > plain.len() {
        return Err(CryptoError::Padding(pad));
    }
    let unpadded_len = plain.len() - pad_len;
    if plain
        .get(unpadded_len..)
        .is_none_or(|tail| tail.iter().any(|&b| b != pad))
    {
        return Err(CryptoError::Padding(pad));
    }
    plain.truncate(unpadded_len);

    let len_bytes: [u8; 4] = plain
        .get(16..HEADER_LEN)
        .and_then(|s| s.try_into().ok())
        .ok_or(CryptoError::Length)?;
    let msg_len =
        usize::try_from(u32::from_be_bytes(len_bytes)).map_err(|_| CryptoError::Length)?;
    let msg_end = HEADER_LEN
        .checked_add(msg_len)
        .filter(|&end| end <= plain.len())
        .ok_or(CryptoError::Length)?;
    Ok(Frame { plain, msg_end })
}

/// Decrypts `encrypt_b64` and returns `(message, receive_id)` without
/// checking the receive id. Meant for fuzzing and diagnostics; request
/// handling should use [`MsgCrypt::decrypt`].
pub fn decrypt_raw(key: &AesKey, encrypt_b64: &str) -> Result<(String, String), CryptoError> {
    let frame = open(key, encrypt_b64)?;
    let msg = std::str::from_utf8(frame.msg()).map_err(|_| CryptoError::Utf8)?;
    let receive_id = std::str::from_utf8(frame.receive_id()).map_err(|_| CryptoError::Utf8)?;
    Ok((msg.to_owned(), receive_id.to_owned()))
}

/// Token, AES key and receive id of one Official Account or WeCom app.
#[derive(Clone)]
pub struct MsgCrypt {
    token: String,
    key: AesKey,
    receive_id: String,
}

impl fmt::Debug for MsgCrypt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MsgCrypt")
            .field("token", &"***")
            .field("key", &self.key)
            .field("receive_id", &self.receive_id)
            .finish()
    }
}

impl MsgCrypt {
    /// Creates the codec; fails only if `encoding_aes_key` is not a valid
    /// 43-character EncodingAESKey. `receive_id` is the appid (OA) or the
    /// corpid / suite id (WeCom).
    pub fn new(token: &str, encoding_aes_key: &str, receive_id: &str) -> Result<Self, CryptoError> {
        Ok(Self {
            token: token.to_owned(),
            key: AesKey::from_encoding_aes_key(encoding_aes_key)?,
            receive_id: receive_id.to_owned(),
        })
    }

    /// The configured appid / corpid.
    pub fn receive_id(&self) -> &str {
        &self.receive_id
    }

    /// The configured token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Plain OA `signature` = sha1(sort(token, timestamp, nonce)).
    pub fn signature(&self, timestamp: &str, nonce: &str) -> String {
        signature::sign(&[&self.token, timestamp, nonce])
    }

    /// Checks the plain OA `signature` (URL verification and every OA push).
    pub fn verify_signature(
        &self,
        sig: &str,
        timestamp: &str,
        nonce: &str,
    ) -> Result<(), CryptoError> {
        if signature::verify(sig, &[&self.token, timestamp, nonce]) {
            Ok(())
        } else {
            Err(CryptoError::BadSignature)
        }
    }

    /// `msg_signature` = sha1(sort(token, timestamp, nonce, encrypt)); for the
    /// WeCom URL check `encrypt` is the (URL-decoded) `echostr`.
    pub fn msg_signature(&self, timestamp: &str, nonce: &str, encrypt: &str) -> String {
        signature::sign(&[&self.token, timestamp, nonce, encrypt])
    }

    /// Checks a `msg_signature`.
    pub fn verify_msg_signature(
        &self,
        sig: &str,
        timestamp: &str,
        nonce: &str,
        encrypt: &str,
    ) -> Result<(), CryptoError> {
        if signature::verify(sig, &[&self.token, timestamp, nonce, encrypt]) {
            Ok(())
        } else {
            Err(CryptoError::BadMsgSignature)
        }
    }

    /// Decrypts `encrypt_b64` (standard base64; surrounding whitespace is
    /// ignored) and checks that the frame's receive id equals the configured
    /// one exactly. Does not check any signature: prefer
    /// [`decrypt_verified`](Self::decrypt_verified) for requests.
    pub fn decrypt(&self, encrypt_b64: &str) -> Result<String, CryptoError> {
        let frame = open(&self.key, encrypt_b64)?;
        if frame.receive_id() != self.receive_id.as_bytes() {
            return Err(CryptoError::ReceiveId);
        }
        std::str::from_utf8(frame.msg())
            .map(str::to_owned)
            .map_err(|_| CryptoError::Utf8)
    }

    /// Verifies `msg_sig` over `encrypt_b64`, then [`decrypt`](Self::decrypt)s it.
    pub fn decrypt_verified(
        &self,
        msg_sig: &str,
        timestamp: &str,
        nonce: &str,
        encrypt_b64: &str,
    ) -> Result<String, CryptoError> {
        self.verify_msg_signature(msg_sig, timestamp, nonce, encrypt_b64)?;
        self.decrypt(encrypt_b64)
    }

    /// Encrypts `msg` with caller-supplied random bytes (deterministic; tests).
    pub fn encrypt_with_random(&self, msg: &str, random: &[u8; 16]) -> String {
        encrypt_raw(&self.key, msg, &self.receive_id, random)
    }

    /// Encrypts `msg` with 16 fresh random bytes.
    pub fn encrypt(&self, msg: &str) -> String {
        self.encrypt_with_random(msg, &rand::random())
    }

    /// Builds the encrypted passive reply body of PROTOCOL.md §1.4 for a
    /// plaintext reply XML; the signature covers the given timestamp/nonce.
    pub fn encrypted_reply(&self, reply_xml: &str, timestamp: &str, nonce: &str) -> String {
        self.encrypted_reply_with_random(reply_xml, timestamp, nonce, &rand::random())
    }

    /// [`encrypted_reply`](Self::encrypted_reply) with fixed random bytes.
    pub fn encrypted_reply_with_random(
        &self,
        reply_xml: &str,
        timestamp: &str,
        nonce: &str,
        random: &[u8; 16],
    ) -> String {
        let encrypt = self.encrypt_with_random(reply_xml, random);
        let sig = self.msg_signature(timestamp, nonce, &encrypt);
        // Same layout as the Tencent sample and wechatpy (newline-separated).
        format!(
            "<xml>\n<Encrypt><![CDATA[{encrypt}]]></Encrypt>\n\
             <MsgSignature><![CDATA[{sig}]]></MsgSignature>\n\
             <TimeStamp>{}</TimeStamp>\n<Nonce>{}</Nonce>\n</xml>",
            quick_xml::escape::escape(timestamp),
            super::reply::cdata(nonce),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const V2_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
    const V2_ENCRYPT: &str = "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=";

    fn v2() -> MsgCrypt {
        MsgCrypt::new("spamtest", V2_KEY, "wx2c2769f8efd9abc2").unwrap()
    }

    /// Encrypts an arbitrary already block-aligned frame (for negative cases).
    fn seal(frame: &[u8]) -> String {
        let key = AesKey::from_encoding_aes_key(V2_KEY).unwrap();
        STANDARD.encode(aes_encrypt(&key, frame))
    }

    /// A frame with header for `msg_len`, `body` bytes and `pad` copies of `pad`.
    fn frame(msg_len: u32, body: &[u8], pad: u8, pad_count: usize) -> Vec<u8> {
        let mut f = vec![b'r'; 16];
        f.extend_from_slice(&msg_len.to_be_bytes());
        f.extend_from_slice(body);
        f.extend(std::iter::repeat_n(pad, pad_count));
        f
    }

    #[test]
    fn v2_frame_layout_random_prefix_and_pad() {
        let key = AesKey::from_encoding_aes_key(V2_KEY).unwrap();
        let cipher = STANDARD.decode(V2_ENCRYPT).unwrap();
        let plain = cbc::Decryptor::<Aes256>::new(&key.0.into(), &key.iv().into())
            .decrypt_padded_vec::<NoPadding>(&cipher)
            .unwrap();
        assert_eq!(&plain[..16], b"89465c840c5f116f");
        assert_eq!(plain[plain.len() - 3..], [b'2', 2, 2]);
        let frame = open(&key, V2_ENCRYPT).unwrap();
        assert_eq!(frame.receive_id(), b"wx2c2769f8efd9abc2");
    }

    #[test]
    fn key_parsing() {
        assert!(
            AesKey::from_encoding_aes_key("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C").is_ok()
        );
        assert_eq!(
            AesKey::from_encoding_aes_key("short").unwrap_err(),
            CryptoError::InvalidKey("must be exactly 43 characters")
        );
        assert_eq!(
            AesKey::from_encoding_aes_key("abcdefghijklmnopqrstuvwxyz0123456789ABCDEF!")
                .unwrap_err(),
            CryptoError::InvalidKey("not valid base64")
        );
        // 43 bytes but multi-byte UTF-8 is never base64.
        assert!(AesKey::from_encoding_aes_key(&format!("{}é", "a".repeat(41))).is_err());
        assert!(MsgCrypt::new("t", "bad", "id").is_err());
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let c = v2();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("spamtest"), "{dbg}");
        assert!(dbg.contains("AesKey(***)"), "{dbg}");
        assert!(dbg.contains("wx2c2769f8efd9abc2"), "{dbg}");
        assert_eq!(format!("{:?}", c.key), "AesKey(***)");
    }

    #[test]
    fn rejects_bad_base64_and_block_size() {
        let c = v2();
        assert_eq!(c.decrypt("not base64!!"), Err(CryptoError::Base64));
        assert_eq!(c.decrypt(""), Err(CryptoError::BlockSize));
        assert_eq!(
            c.decrypt(&STANDARD.encode([0u8; 15])),
            Err(CryptoError::BlockSize)
        );
        assert_eq!(
            c.decrypt(&STANDARD.encode([0u8; 33])),
            Err(CryptoError::BlockSize)
        );
    }

    #[test]
    fn rejects_pad_zero_and_thirty_three() {
        let c = v2();
        let mut zero = frame(1, b"xwx2c2769f8efd9abc2", 0, 0);
        zero.resize(64, 0);
        assert_eq!(c.decrypt(&seal(&zero)), Err(CryptoError::Padding(0)));
        let mut big = frame(1, b"xwx2c2769f8efd9abc2", 33, 0);
        big.resize(96, 33);
        assert_eq!(c.decrypt(&seal(&big)), Err(CryptoError::Padding(33)));
        // Pad byte in range but the pad run is inconsistent.
        let mut mixed = frame(1, b"xwx2c2769f8efd9abc2", 0, 0);
        mixed.resize(63, 7);
        mixed.push(9);
        assert_eq!(c.decrypt(&seal(&mixed)), Err(CryptoError::Padding(9)));
        // Pad longer than the whole (16-byte) plaintext.
        assert_eq!(c.decrypt(&seal(&[32u8; 16])), Err(CryptoError::Padding(32)));
    }

    #[test]
    fn rejects_length_beyond_buffer_and_short_frame() {
        let c = v2();
        // Claims 1000 bytes of message in a 64-byte frame.
        let f = frame(1000, b"hello-wx2c2769f8efd9abc2", 20, 20);
        assert_eq!(f.len(), 64);
        assert_eq!(c.decrypt(&seal(&f)), Err(CryptoError::Length));
        // The WxJava#909 garbage length (u32 0x80..) must not overflow either.
        let f = frame(0x8000_0000, b"hello-wx2c2769f8efd9abc2", 20, 20);
        assert_eq!(c.decrypt(&seal(&f)), Err(CryptoError::Length));
        // Shorter than the 20-byte header after unpadding.
        let mut short = vec![b'r'; 16];
        short.extend(std::iter::repeat_n(16u8, 16));
        assert_eq!(c.decrypt(&seal(&short)), Err(CryptoError::Length));
    }

    #[test]
    fn rejects_foreign_receive_id_and_wrong_key() {
        let foreign = MsgCrypt::new("spamtest", V2_KEY, "wx0000000000000000").unwrap();
        assert_eq!(foreign.decrypt(V2_ENCRYPT), Err(CryptoError::ReceiveId));
        // Prefix / suffix of the real id is still foreign (exact compare, no trim).
        let prefix = MsgCrypt::new("spamtest", V2_KEY, "wx2c2769f8efd9abc").unwrap();
        assert_eq!(prefix.decrypt(V2_ENCRYPT), Err(CryptoError::ReceiveId));
        let wrong_key = MsgCrypt::new(
            "spamtest",
            "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
            "wx2c2769f8efd9abc2",
        )
        .unwrap();
        assert!(wrong_key.decrypt(V2_ENCRYPT).is_err());
    }

    #[test]
    fn rejects_invalid_utf8_message() {
        let c = v2();
        let mut f = frame(2, b"\xff\xfewx2c2769f8efd9abc2", 0, 0);
        let pad = 32 - f.len() % 32;
        f.extend(std::iter::repeat_n(pad as u8, pad));
        assert_eq!(c.decrypt(&seal(&f)), Err(CryptoError::Utf8));
    }

    #[test]
    fn decrypt_raw_returns_receive_id() {
        let key = AesKey::from_encoding_aes_key(V2_KEY).unwrap();
        let (msg, rid) = decrypt_raw(&key, V2_ENCRYPT).unwrap();
        assert!(msg.contains("abcdteT"));
        assert_eq!(rid, "wx2c2769f8efd9abc2");
    }

    #[test]
    fn aligned_plaintext_gets_full_pad_block() {
        // 16 + 4 + 8 + 4 = 32 bytes: an extra 32-byte pad block follows.
        let key = AesKey::from_encoding_aes_key(V2_KEY).unwrap();
        let b64 = encrypt_raw(&key, "12345678", "abcd", &[0; 16]);
        assert_eq!(STANDARD.decode(b64).unwrap().len(), 64);
    }

    proptest! {
        #[test]
        fn encrypt_decrypt_identity(msg in any::<String>(), id in "\\PC{0,40}", random in any::<[u8; 16]>()) {
            let c = MsgCrypt::new("token", V2_KEY, &id).unwrap();
            let enc = c.encrypt_with_random(&msg, &random);
            prop_assert_eq!(c.decrypt(&enc).unwrap(), msg.clone());
            let key = AesKey::from_encoding_aes_key(V2_KEY).unwrap();
            prop_assert_eq!(decrypt_raw(&key, &enc).unwrap(), (msg, id));
        }

        #[test]
        fn decrypt_never_panics_on_strings(s in any::<String>()) {
            let _ = v2().decrypt(&s);
        }

        #[test]
        fn decrypt_never_panics_on_ciphertext_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = v2().decrypt(&STANDARD.encode(&bytes));
        }

        #[test]
        fn decrypt_never_panics_on_block_aligned_plaintexts(
            blocks in proptest::collection::vec(any::<[u8; 16]>(), 1..8)
        ) {
            let plain: Vec<u8> = blocks.concat();
            let _ = v2().decrypt(&seal(&plain));
        }

        #[test]
        fn key_parsing_never_panics(s in any::<String>()) {
            let _ = AesKey::from_encoding_aes_key(&s);
        }

        #[test]
        fn key_parsing_never_panics_on_base64ish(s in "[A-Za-z0-9+/=]{40,46}") {
            let _ = AesKey::from_encoding_aes_key(&s);
        }
    }
}
