//! The TOML files Portcullis reads (pipeline configuration, signing manifests, trust
//! stores) share one error type: every message names the file, and the key at fault
//! with how to fix it.

use std::path::{Path, PathBuf};

/// A TOML file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Malformed TOML, or unknown or mistyped keys.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the key and line).
        message: String,
    },
    /// The values are inconsistent.
    #[error("{path}: {key}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The offending key, e.g. `policies[2].stages`.
        key: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// Read a file's text.
pub fn read(path: &Path) -> Result<String, FileError> {
    std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Deserialize TOML `text`; `path` is used in messages.
pub fn parse<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T, FileError> {
    toml::from_str(text).map_err(|e| FileError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// An [`FileError::Invalid`] for `path`.
pub fn invalid(path: &Path, key: impl Into<String>, message: impl Into<String>) -> FileError {
    FileError::Invalid {
        path: path.to_path_buf(),
        key: key.into(),
        message: message.into(),
    }
}
