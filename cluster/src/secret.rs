//! Passwords in configuration files: `binlogctl -cmd encrypt` produces them, the drainer's
//! `encrypted_password` consumes them. The format is the original's, so existing configs keep
//! working: base64(iv ‖ `@` ‖ AES-CFB(plaintext)), keyed by the hex env `BINLOG_SECRET_KEY` or the
//! original's built-in default key.

use aes::cipher::{AsyncStreamCipher, KeyIvInit};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The environment variable holding a hex AES key (16, 24 or 32 bytes).
pub const SECRET_KEY_ENV: &str = "BINLOG_SECRET_KEY";

/// The original's default key, used when `BINLOG_SECRET_KEY` is unset; it is public, so it only
/// keeps passwords out of casual sight.
const DEFAULT_KEY_HEX: &str = "a529b7665997f043a30ac8fadcb51d6aa032c226ab5b7750530b12b8c1a16a48";

const IV_LEN: usize = 16;
const IV_SEPARATOR: u8 = b'@';

/// Why a secret could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The key is not hex of 16, 24 or 32 bytes.
    #[error("{SECRET_KEY_ENV} must be hex of 16, 24 or 32 bytes: {0}")]
    BadKey(String),
    /// The ciphertext is not base64 of iv ‖ `@` ‖ data.
    #[error("encrypted text is malformed: {0}")]
    Malformed(&'static str),
    /// The system random source failed.
    #[error("cannot generate an IV: {0}")]
    Random(String),
}

/// The key in force: `BINLOG_SECRET_KEY` when set, else the default.
pub fn secret_key() -> Result<Vec<u8>, SecretError> {
    match std::env::var(SECRET_KEY_ENV) {
        Ok(hex_key) => parse_key(&hex_key),
        Err(_) => parse_key(DEFAULT_KEY_HEX),
    }
}

fn parse_key(hex_key: &str) -> Result<Vec<u8>, SecretError> {
    let key = hex::decode(hex_key.trim()).map_err(|err| SecretError::BadKey(err.to_string()))?;
    match key.len() {
        16 | 24 | 32 => Ok(key),
        n => Err(SecretError::BadKey(format!("got {n} bytes"))),
    }
}

fn apply_cfb(
    key: &[u8],
    iv: &[u8; IV_LEN],
    data: &mut [u8],
    encrypt: bool,
) -> Result<(), SecretError> {
    macro_rules! run {
        ($cipher:ty) => {
            if encrypt {
                cfb_mode::Encryptor::<$cipher>::new_from_slices(key, iv).map(|c| c.encrypt(data))
            } else {
                cfb_mode::Decryptor::<$cipher>::new_from_slices(key, iv).map(|c| c.decrypt(data))
            }
        };
    }
    match key.len() {
        16 => run!(aes::Aes128),
        24 => run!(aes::Aes192),
        _ => run!(aes::Aes256),
    }
    .map_err(|_| SecretError::BadKey(format!("got {} bytes", key.len())))
}

/// Encrypts `plaintext` with `key` under a fresh random IV.
pub fn seal_with(key: &[u8], plaintext: &[u8]) -> Result<String, SecretError> {
    let key = parse_key(&hex::encode(key))?;
    let mut iv = [0u8; IV_LEN];
    getrandom::fill(&mut iv).map_err(|err| SecretError::Random(err.to_string()))?;
    let mut data = plaintext.to_vec();
    apply_cfb(&key, &iv, &mut data, true)?;
    let mut out = Vec::with_capacity(IV_LEN + 1 + data.len());
    out.extend_from_slice(&iv);
    out.push(IV_SEPARATOR);
    out.extend_from_slice(&data);
    Ok(STANDARD.encode(out))
}

/// Decrypts what [`seal_with`] (or the original's `encrypt`) produced.
pub fn open_with(key: &[u8], sealed: &str) -> Result<Vec<u8>, SecretError> {
    let key = parse_key(&hex::encode(key))?;
    let raw = STANDARD
        .decode(sealed.trim())
        .map_err(|_| SecretError::Malformed("not base64"))?;
    if raw.len() < IV_LEN + 1 || raw[IV_LEN] != IV_SEPARATOR {
        return Err(SecretError::Malformed(
            "missing the 16-byte IV and '@' separator",
        ));
    }
    let mut iv = [0u8; IV_LEN];
    iv.copy_from_slice(&raw[..IV_LEN]);
    let mut data = raw[IV_LEN + 1..].to_vec();
    apply_cfb(&key, &iv, &mut data, false)?;
    Ok(data)
}

/// [`seal_with`] using the key in force.
pub fn seal(plaintext: &[u8]) -> Result<String, SecretError> {
    seal_with(&secret_key()?, plaintext)
}

/// [`open_with`] using the key in force.
pub fn open(sealed: &str) -> Result<Vec<u8>, SecretError> {
    open_with(&secret_key()?, sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_every_key_size() {
        for len in [16, 24, 32] {
            let key = vec![7u8; len];
            let sealed = seal_with(&key, b"s3cret pass").unwrap();
            assert_eq!(open_with(&key, &sealed).unwrap(), b"s3cret pass");
        }
    }

    #[test]
    fn layout_is_iv_separator_ciphertext() {
        let key = parse_key(DEFAULT_KEY_HEX).unwrap();
        let sealed = seal_with(&key, b"abc").unwrap();
        let raw = STANDARD.decode(sealed).unwrap();
        assert_eq!(raw.len(), 16 + 1 + 3);
        assert_eq!(raw[16], b'@');
    }

    #[test]
    fn matches_an_independent_aes_cfb_vector() {
        // NIST SP 800-38A F.3.13 (CFB128-AES128), first block.
        let key = hex::decode("2b7e151628aed2a6abf7158809cf4f3c").unwrap();
        let iv = hex::decode("000102030405060708090a0b0c0d0e0f").unwrap();
        let plain = hex::decode("6bc1bee22e409f96e93d7e117393172a").unwrap();
        let mut sealed = iv.clone();
        sealed.push(b'@');
        sealed.extend(hex::decode("3b3fd92eb72dad20333449f8e83cfb4a").unwrap());
        assert_eq!(open_with(&key, &STANDARD.encode(sealed)).unwrap(), plain);
    }

    #[test]
    fn bad_input_is_named() {
        let key = vec![1u8; 16];
        assert_eq!(
            open_with(&key, "%%%"),
            Err(SecretError::Malformed("not base64"))
        );
        assert!(matches!(
            open_with(&key, &STANDARD.encode([0u8; 10])),
            Err(SecretError::Malformed(_))
        ));
        assert!(matches!(parse_key("abcd"), Err(SecretError::BadKey(_))));
        assert!(matches!(parse_key("zz"), Err(SecretError::BadKey(_))));
    }
}
