//! Signed policy artifacts: a component `policy.wasm` plus a sidecar
//! `policy.wasm.sigstore.json` (a Sigstore v0.3 bundle holding a DSSE envelope whose
//! payload is an in-toto Statement v1 about the component), and the operator's trust
//! store that decides whether to believe it.
//!
//! * [`keys`]: Ed25519 keys, PEM files and key ids;
//! * [`manifest`]: the author's signing manifest and the signed predicate;
//! * [`statement`]: the in-toto statement;
//! * [`dsse`]: the envelope and its pre-authentication encoding;
//! * [`bundle`]: the Sigstore bundle and sidecar files (and the multi-signature choice);
//! * [`sign`]: creating or extending a bundle;
//! * [`trust`]: the trust store and verification (one error per failed check);
//! * [`component`]: a component's imports and exports, read without compiling it.
//!
//! This slice is a library and CLI; the pipeline does not yet verify at load.

pub mod bundle;
pub mod component;
pub mod dsse;
pub mod keys;
pub mod manifest;
pub mod sign;
pub mod statement;
pub mod trust;
