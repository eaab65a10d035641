//! Decrypts arbitrary input with a fixed key: as base64 text, and as raw
//! ciphertext bytes (re-encoded) so the fuzzer reaches the padding and
//! length checks. Any panic is a bug.

#![no_main]

use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kefu::wechat::{AesKey, MsgCrypt, decrypt_raw};
use libfuzzer_sys::fuzz_target;

const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

static KEY: LazyLock<AesKey> =
    LazyLock::new(|| AesKey::from_encoding_aes_key(AES_KEY).expect("fixed key is valid"));
static CRYPT: LazyLock<MsgCrypt> = LazyLock::new(|| {
    MsgCrypt::new("token", AES_KEY, "wx2c2769f8efd9abc2").expect("fixed key is valid")
});

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = decrypt_raw(&KEY, text);
        let _ = CRYPT.decrypt(text);
        let _ = AesKey::from_encoding_aes_key(text);
    }
    let b64 = STANDARD.encode(data);
    let _ = decrypt_raw(&KEY, &b64);
    let _ = CRYPT.decrypt_verified("0", "1", "2", &b64);
});
