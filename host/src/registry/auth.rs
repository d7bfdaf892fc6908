//! Registry credentials, from a Docker-style `config.json` (`auths.<registry>` with
//! `auth` = base64 `user:password`, or `username`/`password`, or `registrytoken` for a
//! bearer token) or given directly. Credentials are never logged or printed.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

/// Credentials per registry (`host[:port]`); anonymous for any other.
#[derive(Clone, Default)]
pub struct Credentials {
    by_registry: HashMap<String, Secret>,
}

#[derive(Clone)]
enum Secret {
    Basic(String, String),
    Bearer(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut registries: Vec<_> = self.by_registry.keys().collect();
        registries.sort();
        f.debug_struct("Credentials")
            .field("registries", &registries)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, DockerAuth>,
}

#[derive(Deserialize)]
struct DockerAuth {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    registrytoken: Option<String>,
}

impl Credentials {
    /// The default Docker config: `$DOCKER_CONFIG/config.json`, else
    /// `~/.docker/config.json`.
    pub fn default_docker_config() -> Option<PathBuf> {
        let dir = std::env::var_os("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker")))?;
        Some(dir.join("config.json"))
    }

    /// The credentials in `path`, else in the default Docker config if there is one,
    /// else none.
    pub fn load(path: Option<&Path>) -> Result<Credentials, String> {
        match path {
            Some(path) => Credentials::from_docker_config(path),
            None => match Credentials::default_docker_config().filter(|p| p.is_file()) {
                Some(path) => Credentials::from_docker_config(&path),
                None => Ok(Credentials::default()),
            },
        }
    }

    /// Read a Docker-style config file. A missing file is an error (the caller named
    /// it); use [`Credentials::default`] for none.
    pub fn from_docker_config(path: &Path) -> Result<Credentials, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read registry credentials {}: {e}", path.display()))?;
        let config: DockerConfig = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a Docker config file: {e}", path.display()))?;
        let mut credentials = Credentials::default();
        for (key, entry) in config.auths {
            let registry = registry_of(&key);
            let secret = if let Some(token) = entry.registrytoken {
                Secret::Bearer(token)
            } else if let Some(encoded) = entry.auth {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .and_then(|s| s.split_once(':').map(|(u, p)| (u.into(), p.into())));
                let Some((user, password)) = decoded else {
                    return Err(format!(
                        "{}: auths.{key:?}.auth is not base64 of user:password",
                        path.display()
                    ));
                };
                Secret::Basic(user, password)
            } else if let (Some(user), Some(password)) = (entry.username, entry.password) {
                Secret::Basic(user, password)
            } else {
                continue;
            };
            credentials.by_registry.insert(registry, secret);
        }
        Ok(credentials)
    }

    /// Use HTTP Basic credentials for `registry`.
    pub fn basic(mut self, registry: &str, user: &str, password: &str) -> Credentials {
        self.by_registry.insert(
            registry_of(registry),
            Secret::Basic(user.into(), password.into()),
        );
        self
    }

    /// Use a bearer token for `registry`.
    pub fn bearer(mut self, registry: &str, token: &str) -> Credentials {
        self.by_registry
            .insert(registry_of(registry), Secret::Bearer(token.into()));
        self
    }

    /// The authentication to use with `registry`.
    pub(crate) fn for_registry(&self, registry: &str) -> RegistryAuth {
        match self.by_registry.get(registry) {
            None => RegistryAuth::Anonymous,
            Some(Secret::Basic(u, p)) => RegistryAuth::Basic(u.clone(), p.clone()),
            Some(Secret::Bearer(t)) => RegistryAuth::Bearer(t.clone()),
        }
    }
}

/// `https://host:port/v1/` → `host:port`.
fn registry_of(key: &str) -> String {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    key.split('/').next().unwrap_or(key).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_entries_by_registry_and_secrets_stay_out_of_debug() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths": {
                "https://127.0.0.1:5000/v2/": {"auth": "YWxpY2U6czNjcmV0"},
                "reg.example": {"username": "bob", "password": "pw"},
                "tok.example": {"registrytoken": "t0k"},
                "empty.example": {}
            }}"#,
        )
        .unwrap();
        let c = Credentials::from_docker_config(&path).unwrap();
        assert!(matches!(c.for_registry("127.0.0.1:5000"),
            RegistryAuth::Basic(u, p) if u == "alice" && p == "s3cret"));
        assert!(matches!(c.for_registry("reg.example"), RegistryAuth::Basic(u, _) if u == "bob"));
        assert!(matches!(c.for_registry("tok.example"), RegistryAuth::Bearer(t) if t == "t0k"));
        assert!(matches!(
            c.for_registry("empty.example"),
            RegistryAuth::Anonymous
        ));
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret") && !shown.contains("t0k") && !shown.contains("pw"));

        std::fs::write(
            &path,
            r#"{"auths": {"r.example": {"auth": "bm9jb2xvbg=="}}}"#,
        )
        .unwrap();
        let err = Credentials::from_docker_config(&path).unwrap_err();
        assert!(err.contains("user:password"), "{err}");
    }
}
