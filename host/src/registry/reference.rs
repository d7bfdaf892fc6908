//! Artifact references: `oci://REGISTRY/REPOSITORY[:TAG][@sha256:HEX]`.

use std::fmt;

/// The scheme that marks a registry reference in the configuration.
pub const SCHEME: &str = "oci://";

/// A reference to a policy artifact in a registry, with the registry always named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactRef(oci_client::Reference);

impl ArtifactRef {
    /// Parse `oci://registry/repo:tag`, `registry/repo@sha256:…` (the scheme is
    /// optional). The registry must be explicit (a host name with a dot or a port, or
    /// `localhost`): a bare `repo:tag` would silently mean Docker Hub.
    pub fn parse(text: &str) -> Result<ArtifactRef, String> {
        let bare = text.strip_prefix(SCHEME).unwrap_or(text);
        let bad = |why: &str| Err(format!("bad registry reference {text:?}: {why}"));
        let Some((first, _)) = bare.split_once('/') else {
            return bad("expected REGISTRY/REPOSITORY[:TAG][@sha256:DIGEST]");
        };
        if !(first.contains('.') || first.contains(':') || first == "localhost") {
            return bad(
                "name the registry explicitly (host with a dot or a port, or localhost), \
                 e.g. oci://registry.example.com/policies/pii:1.0",
            );
        }
        let parsed: Result<oci_client::Reference, _> = bare.parse();
        let reference = match parsed.map_err(|e| e.to_string()) {
            Ok(r) => r,
            Err(e) => return bad(&e),
        };
        if let Some(digest) = reference.digest()
            && !is_sha256_digest(digest)
        {
            return bad("the digest must be sha256: followed by 64 lowercase hex digits");
        }
        Ok(ArtifactRef(reference))
    }

    /// Whether configuration text names a registry artifact (starts with `oci://`).
    pub fn is_registry(text: &str) -> bool {
        text.starts_with(SCHEME)
    }

    /// The registry (`host[:port]`).
    pub fn registry(&self) -> &str {
        self.0.registry()
    }

    /// The repository inside the registry.
    pub fn repository(&self) -> &str {
        self.0.repository()
    }

    /// The tag, if the reference has one.
    pub fn tag(&self) -> Option<&str> {
        self.0.tag()
    }

    /// The pinned digest, if the reference has one.
    pub fn digest(&self) -> Option<&str> {
        self.0.digest()
    }

    /// The same repository at `digest` (no tag).
    pub fn at_digest(&self, digest: &str) -> ArtifactRef {
        ArtifactRef(oci_client::Reference::with_digest(
            self.registry().to_string(),
            self.repository().to_string(),
            digest.to_string(),
        ))
    }

    /// The same repository at `tag`.
    pub fn at_tag(&self, tag: &str) -> ArtifactRef {
        ArtifactRef(oci_client::Reference::with_tag(
            self.registry().to_string(),
            self.repository().to_string(),
            tag.to_string(),
        ))
    }

    /// The `oci_client` reference.
    pub(crate) fn oci(&self) -> &oci_client::Reference {
        &self.0
    }
}

impl fmt::Display for ArtifactRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}/{}", self.registry(), self.repository())?;
        if let Some(tag) = self.tag() {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = self.digest() {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// `sha256:` followed by 64 lowercase hex digits.
pub fn is_sha256_digest(text: &str) -> bool {
    text.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_their_registry_and_round_trip() {
        let r = ArtifactRef::parse("oci://127.0.0.1:5000/policies/pii:1.2").unwrap();
        assert_eq!(
            (r.registry(), r.repository(), r.tag(), r.digest()),
            ("127.0.0.1:5000", "policies/pii", Some("1.2"), None)
        );
        assert_eq!(r.to_string(), "oci://127.0.0.1:5000/policies/pii:1.2");
        let d = format!("sha256:{}", "a".repeat(64));
        let pinned = ArtifactRef::parse(&format!("registry.example.com/p@{d}")).unwrap();
        assert_eq!(pinned.digest(), Some(d.as_str()));
        assert_eq!(
            ArtifactRef::parse(&pinned.to_string()).unwrap(),
            pinned,
            "Display parses back"
        );
        for bad in [
            "pii:1.0",
            "policies/pii:1.0",
            "oci://",
            "oci://localhost/p@sha256:abc",
            "oci://r.example/UPPER:1",
        ] {
            assert!(ArtifactRef::parse(bad).is_err(), "{bad} must be refused");
        }
    }
}
