//! What the pump's and the drainer's configuration loading share: reading the `-config` TOML
//! file strictly (the types deny unknown keys; the parser's message names the key and line) and
//! the error that says which setting was wrong and what was expected.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::secret::SecretError;

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for this program, or holds a key it does not know.
    #[error("config file {path} is invalid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, naming the key and line.
        message: String,
    },
    /// A value is out of range or malformed.
    #[error("invalid {key} {value:?}: {reason}")]
    Invalid {
        /// The setting (a TOML key path, a flag or an environment variable).
        key: String,
        /// The value given.
        value: String,
        /// What is expected.
        reason: String,
    },
    /// An `encrypted_password` could not be decrypted.
    #[error("cannot decrypt {key}: {source}")]
    Secret {
        /// The setting.
        key: &'static str,
        /// Why.
        source: SecretError,
    },
}

impl ConfigError {
    /// `key` holds `value`, which is not what is expected (`reason`).
    pub fn invalid(
        key: impl Into<String>,
        value: impl ToString,
        reason: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// Reads and parses the config file at `path`.
pub fn read_toml<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_toml(&text, path)
}

/// Parses the text of the config file at `path`.
pub fn parse_toml<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|err| ConfigError::Parse {
        path: path.to_owned(),
        message: err.to_string().trim_end().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        #[allow(dead_code)]
        addr: Option<String>,
    }

    #[test]
    fn an_unknown_key_is_named_with_the_file() {
        let err = parse_toml::<Sample>("adr = \"x\"", Path::new("p.toml")).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("config file p.toml is invalid"), "{text}");
        assert!(text.contains("adr"), "{text}");
    }

    #[test]
    fn a_missing_file_is_a_read_error_naming_it() {
        let err = read_toml::<Sample>(Path::new("/nonexistent/p.toml")).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }));
        assert!(err.to_string().contains("/nonexistent/p.toml"));
    }
}
