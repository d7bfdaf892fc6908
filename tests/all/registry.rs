//! Policies through a real OCI registry: Debian's `docker-registry` (CNCF
//! Distribution 2.8, no Referrers API) started on 127.0.0.1 by each test, with and
//! without Basic auth. `.ci/run` extracts it from the Debian package and sets
//! `PORTCULLIS_REGISTRY_BIN`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use portcullis::artifact::bundle::sidecar_path;
use portcullis::artifact::manifest::Kind;
use portcullis::registry::layout::{self, Descriptor};
use serde_json::{Value, json};

use crate::signing::{bundle_bytes, key, key_entry, predicate};
use crate::support::{ServedHost, TestRegistry, guest};

const PII: &str = "portcullis_policy_pii";

/// Plain-HTTP access to the registry API, bypassing Portcullis.
impl TestRegistry {
    /// GET a document from the registry API (anonymous).
    async fn get(&self, path: &str, accept: &str) -> (u16, Vec<u8>) {
        let response = reqwest::Client::new()
            .get(format!("http://{}/v2/{path}", self.address))
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.bytes().await.unwrap().to_vec())
    }

    /// Upload blobs and a manifest with plain HTTP, bypassing `portcullis push` (as
    /// an attacker with write access, or another tool, would).
    async fn raw_push(&self, repository: &str, tag: &str, blobs: &[&[u8]], manifest: &[u8]) {
        let client = reqwest::Client::new();
        let base = format!("http://{}/v2/{repository}", self.address);
        for blob in blobs {
            let digest = Descriptor::of("", blob).digest;
            let started = client
                .post(format!("{base}/blobs/uploads/"))
                .send()
                .await
                .unwrap();
            assert_eq!(started.status(), 202, "upload session");
            let location = started.headers()["location"].to_str().unwrap().to_string();
            let separator = if location.contains('?') { '&' } else { '?' };
            let location = if location.starts_with("http") {
                location
            } else {
                format!("http://{}{location}", self.address)
            };
            let response = client
                .put(format!("{location}{separator}digest={digest}"))
                .header("content-type", "application/octet-stream")
                .body(blob.to_vec())
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 201, "blob upload");
        }
        self.put_manifest(repository, tag, layout::MANIFEST, manifest)
            .await;
    }

    /// PUT a manifest or index at `tag` (or digest) with plain HTTP.
    async fn put_manifest(&self, repository: &str, tag: &str, media_type: &str, bytes: &[u8]) {
        let response = reqwest::Client::new()
            .put(format!(
                "http://{}/v2/{repository}/manifests/{tag}",
                self.address
            ))
            .header("content-type", media_type)
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "manifest upload");
    }
}

/// A work directory, a signing key from `seed`, and `trust.toml` there trusting it.
fn workbench(seed: u8) -> (tempfile::TempDir, SigningKey, PathBuf) {
    let work = tempfile::tempdir().unwrap();
    let signer = key(seed);
    let trust = work.path().join("trust.toml");
    std::fs::write(&trust, key_entry(&signer, "")).unwrap();
    (work, signer, trust)
}

/// A signed release of the pii component in `dir`: `pii-<version>.wasm` and its
/// bundle signed by `signer` with `sequence`.
fn release(dir: &Path, signer: &SigningKey, version: &str, sequence: u64) -> PathBuf {
    let wasm = guest(PII);
    let mut p = predicate("pii", sequence, Kind::ContentPolicy);
    p.version = version.to_string();
    let path = dir.join(format!("pii-{version}.wasm"));
    std::fs::write(&path, &wasm).unwrap();
    std::fs::write(sidecar_path(&path), bundle_bytes(&wasm, p, &[signer])).unwrap();
    path
}

fn portcullis(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    command.args(args).env("HOME", "/nonexistent");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("portcullis runs")
}

/// `portcullis pull` with `options`, verifying against `trust`, writing into `out`.
fn pull_policy(options: &[&str], trust: &Path, out: &Path, source: &str) -> Output {
    let base = [
        "--trust",
        trust.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    portcullis(&[&["pull"][..], options, &base, &[source]].concat(), &[])
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn push_stores_the_cncf_layout_and_a_referrer_and_pull_verifies_before_writing() {
    let Some(registry) = TestRegistry::start(None) else {
        return;
    };
    let (work, signer, trust) = workbench(71);
    let wasm_path = release(work.path(), &signer, "1.0.0", 1);
    let insecure = ["--insecure-registry", &registry.host()];
    let target = registry.reference("policies/pii:1.0.0");
    let pushed = portcullis(
        &[
            &["push"][..],
            &insecure,
            &[wasm_path.to_str().unwrap(), &target],
        ]
        .concat(),
        &[],
    );
    assert!(pushed.status.success(), "{}", stderr(&pushed));
    let by_digest = String::from_utf8_lossy(&pushed.stdout).trim().to_string();
    let digest = by_digest.rsplit_once('@').unwrap().1.to_string();
    assert!(
        stderr(&pushed).contains("no Referrers API"),
        "{}",
        stderr(&pushed)
    );

    // The registry holds the CNCF Wasm layout, byte for byte what the digest names.
    let (status, manifest) = registry
        .get("policies/pii/manifests/1.0.0", layout::MANIFEST)
        .await;
    assert_eq!(status, 200);
    assert_eq!(Descriptor::of("", &manifest).digest, digest);
    let m: Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(m["config"]["mediaType"], layout::WASM_CONFIG);
    assert_eq!(m["layers"].as_array().unwrap().len(), 1);
    assert_eq!(m["layers"][0]["mediaType"], "application/wasm");
    assert_eq!(
        m["layers"][0]["digest"],
        Descriptor::of("", &guest(PII)).digest
    );
    // No Referrers API in Distribution 2.8: the bundle is listed under the fallback tag.
    let (status, _) = registry
        .get(&format!("policies/pii/referrers/{digest}"), layout::INDEX)
        .await;
    assert_eq!(status, 404, "this registry has no Referrers API");
    let (status, index) = registry
        .get(
            &format!("policies/pii/manifests/{}", layout::fallback_tag(&digest)),
            layout::INDEX,
        )
        .await;
    assert_eq!(status, 200);
    let index: Value = serde_json::from_slice(&index).unwrap();
    let referrer = &index["manifests"][0];
    assert_eq!(referrer["artifactType"], layout::BUNDLE);
    let (_, referrer) = registry
        .get(
            &format!(
                "policies/pii/manifests/{}",
                referrer["digest"].as_str().unwrap()
            ),
            layout::MANIFEST,
        )
        .await;
    let referrer: Value = serde_json::from_slice(&referrer).unwrap();
    assert_eq!(referrer["subject"]["digest"], digest.as_str());
    assert_eq!(referrer["artifactType"], layout::BUNDLE);
    assert_eq!(referrer["layers"][0]["mediaType"], layout::BUNDLE);

    // Pull by tag and by digest: verified, then written.
    for source in [target.as_str(), by_digest.as_str()] {
        let out = work.path().join("pulled");
        let options = [&insecure[..], &["--name", "pii"]].concat();
        let pulled = pull_policy(&options, &trust, &out, source);
        assert!(pulled.status.success(), "{}", stderr(&pulled));
        assert_eq!(std::fs::read(out.join("pii.wasm")).unwrap(), guest(PII));
        assert_eq!(
            std::fs::read(sidecar_path(&out.join("pii.wasm"))).unwrap(),
            std::fs::read(sidecar_path(&wasm_path)).unwrap()
        );
    }

    // A trust store that does not trust the signer: refused, nothing written.
    let other = work.path().join("other-trust.toml");
    std::fs::write(&other, key_entry(&key(72), "")).unwrap();
    let out = work.path().join("refused");
    let refused = pull_policy(&insecure, &other, &out, &target);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("unknown key"),
        "{}",
        stderr(&refused)
    );
    assert!(
        files_in(&out).is_empty(),
        "nothing written: {:?}",
        files_in(&out)
    );

    // Without --insecure-registry the client insists on TLS, and says what to do.
    let tls = pull_policy(&[], &trust, &out, &target);
    assert_eq!(tls.status.code(), Some(2));
    assert!(
        stderr(&tls).contains("--insecure-registry"),
        "{}",
        stderr(&tls)
    );
}

#[tokio::test]
async fn basic_auth_is_required_and_credentials_come_from_env_or_docker_config() {
    let Some(registry) = TestRegistry::start(Some(("ci", "s3cret-pw"))) else {
        return;
    };
    let (work, signer, trust) = workbench(73);
    let wasm_path = release(work.path(), &signer, "1.0.0", 1);
    let wasm = wasm_path.to_str().unwrap();
    let target = registry.reference("policies/pii:1.0.0");
    let insecure = ["--insecure-registry", &registry.host()];

    let anonymous = portcullis(&[&["push"][..], &insecure, &[wasm, &target]].concat(), &[]);
    assert_eq!(anonymous.status.code(), Some(2));
    assert!(
        stderr(&anonymous).contains("refused access"),
        "{}",
        stderr(&anonymous)
    );

    let user = [&insecure[..], &["--username", "ci"]].concat();
    let wrong = portcullis(
        &[&["push"][..], &user, &[wasm, &target]].concat(),
        &[("PORTCULLIS_REGISTRY_PASSWORD", "wrong")],
    );
    assert_eq!(wrong.status.code(), Some(2));
    assert!(
        stderr(&wrong).contains("refused access"),
        "{}",
        stderr(&wrong)
    );
    assert!(
        !stderr(&wrong).contains("wrong"),
        "the password is never printed"
    );

    let pushed = portcullis(
        &[&["push"][..], &user, &[wasm, &target]].concat(),
        &[("PORTCULLIS_REGISTRY_PASSWORD", "s3cret-pw")],
    );
    assert!(pushed.status.success(), "{}", stderr(&pushed));

    // Pull with a Docker-style config file.
    let docker = work.path().join("docker.json");
    std::fs::write(
        &docker,
        json!({"auths": {registry.host(): {"auth": "Y2k6czNjcmV0LXB3"}}}).to_string(),
    )
    .unwrap();
    let out = work.path().join("out");
    let options = [&insecure[..], &["--credentials", docker.to_str().unwrap()]].concat();
    let pulled = pull_policy(&options, &trust, &out, &target);
    assert!(pulled.status.success(), "{}", stderr(&pulled));
    assert_eq!(files_in(&out), ["pii.wasm", "pii.wasm.sigstore.json"]);
}

#[tokio::test]
async fn registry_errors_are_clear_and_leave_nothing_behind() {
    let Some(registry) = TestRegistry::start(None) else {
        return;
    };
    let (work, signer, trust) = workbench(74);
    let wasm_path = release(work.path(), &signer, "1.0.0", 1);
    let out = work.path().join("out");
    let host = registry.host();
    let pull = |extra: &[&str], source: &str| {
        let options = [&["--insecure-registry", host.as_str()][..], extra].concat();
        pull_policy(&options, &trust, &out, source)
    };
    let push = portcullis(
        &[
            "push",
            "--insecure-registry",
            &registry.host(),
            wasm_path.to_str().unwrap(),
            &registry.reference("policies/pii:1.0.0"),
        ],
        &[],
    );
    assert!(push.status.success(), "{}", stderr(&push));

    // Unknown tag.
    let unknown = pull(&[], &registry.reference("policies/pii:9.9.9"));
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("not found: tag"),
        "{}",
        stderr(&unknown)
    );

    // Over the configured size limit (checked from the manifest, before download).
    let big = pull(
        &["--max-blob-mb", "0"],
        &registry.reference("policies/pii:1.0.0"),
    );
    assert_eq!(big.status.code(), Some(2));
    assert!(
        stderr(&big).contains("over the 0-byte limit"),
        "{}",
        stderr(&big)
    );

    // A component pushed without its signature referrer (by another tool).
    let wasm = guest(PII);
    let wasm_desc = Descriptor::of(layout::WASM_LAYER, &wasm);
    let config = layout::wasm_config(&wasm_desc, "portcullis:policy/content-policy@0.1.0", &[]);
    let manifest = layout::policy_manifest(
        &Descriptor::of(layout::WASM_CONFIG, &config),
        &wasm_desc,
        "pii",
        "1.0.0",
    );
    registry
        .raw_push(
            "policies/unsigned",
            "1.0.0",
            &[&config, &wasm],
            &manifest.bytes,
        )
        .await;
    let unsigned = pull(&[], &registry.reference("policies/unsigned:1.0.0"));
    assert_eq!(unsigned.status.code(), Some(2));
    let message = stderr(&unsigned);
    assert!(message.contains("no signature attached"), "{message}");
    assert!(
        message.contains(&layout::fallback_tag(&manifest.descriptor.digest)),
        "{message}"
    );

    // A registry that accepts the connection and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = silent.local_addr().unwrap().to_string();
    let timeout = pull_policy(
        &["--insecure-registry", &address, "--timeout", "1"],
        &trust,
        &out,
        &format!("{address}/policies/pii:1.0.0"),
    );
    assert_eq!(timeout.status.code(), Some(2));
    let message = stderr(&timeout);
    assert!(
        message.contains("did not answer within 1 s") || message.contains("timed out"),
        "{message}"
    );

    // A bare name would silently mean Docker Hub: refused.
    let bare = pull(&[], "policies/pii:1.0.0");
    assert!(
        stderr(&bare).contains("name the registry explicitly"),
        "{}",
        stderr(&bare)
    );

    assert!(
        files_in(&out).is_empty(),
        "nothing written: {:?}",
        files_in(&out)
    );
}

/// A host directory: trust store, and a configuration that runs pii from `reference`
/// through the registry (polled every second; `settings` are more `[registry]` lines)
/// with alerts to `alerts.jsonl`.
fn host_dir(
    registry: &TestRegistry,
    trust: &str,
    reference: &str,
    settings: &str,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("trust.toml"), trust).unwrap();
    std::fs::write(
        dir.path().join("portcullis.toml"),
        format!(
            r#"[trust]
store = "trust.toml"
[lifecycle]
dir = "lifecycle"
[registry]
cache_dir = "registry-cache"
poll_seconds = 1
timeout_seconds = 2
insecure = ["{host}"]
{settings}
{gateway}[alerts]
sink = "alerts.jsonl"
dedup_s = 0
[[policies]]
name = "pii"
path = "oci://{reference}"
stages = ["input"]
config = {{ action = "redact" }}
"#,
            host = registry.host(),
            gateway = crate::support::DEV_GATEWAY,
        ),
    )
    .unwrap();
    dir
}

/// Wait until `done` holds (polling), at most `seconds`.
async fn eventually(seconds: u64, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn alerts(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("alerts.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn push_release(registry: &TestRegistry, wasm_path: &Path, tag: &str) {
    let out = portcullis(
        &[
            "push",
            "--insecure-registry",
            &registry.host(),
            wasm_path.to_str().unwrap(),
            &registry.reference(tag),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The issue's scenario: v1 → two hosts serve it → v2 → both converge → a tampered
/// v3 is refused by both (alert) → the registry stops, the hosts keep serving and a
/// restarted host starts from its cache → the registry returns and v4 arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_converge_refuse_tampering_and_ride_out_a_registry_outage() {
    let Some(mut registry) = TestRegistry::start(None) else {
        return;
    };
    let (work, signer, trust) = workbench(75);
    let trust = std::fs::read_to_string(trust).unwrap();
    let tag = "policies/pii:stable";
    push_release(&registry, &release(work.path(), &signer, "1.0.0", 1), tag);

    let dirs = [
        host_dir(&registry, &trust, &registry.reference(tag), ""),
        host_dir(&registry, &trust, &registry.reference(tag), ""),
    ];
    let mut hosts = Vec::new();
    for dir in &dirs {
        hosts.push(ServedHost::start(dir.path()).await.unwrap());
    }
    for h in &hosts {
        assert_eq!(h.version().as_deref(), Some("1.0.0"));
        assert_eq!(
            h.echo("mail bob@example.org").await,
            "You said: mail [EMAIL_1]"
        );
    }

    // v2 under the same tag: both converge.
    let v2 = release(work.path(), &signer, "1.1.0", 2);
    push_release(&registry, &v2, tag);
    eventually(30, "both hosts run v2", || {
        hosts
            .iter()
            .all(|h| h.version().as_deref() == Some("1.1.0"))
    })
    .await;

    // A tampered v3: another component under v2's valid bundle, pushed with plain
    // HTTP (as an attacker with registry write access would). Both hosts refuse it,
    // alert, and keep v2.
    let evil = guest("portcullis_test_hostile");
    let evil_desc = Descriptor::of(layout::WASM_LAYER, &evil);
    let config = layout::wasm_config(&evil_desc, "portcullis:policy/content-policy@0.1.0", &[]);
    let config_desc = Descriptor::of(layout::WASM_CONFIG, &config);
    let manifest = layout::policy_manifest(&config_desc, &evil_desc, "pii", "1.2.0");
    let bundle = std::fs::read(sidecar_path(&v2)).unwrap();
    let bundle_desc = Descriptor::of(layout::BUNDLE, &bundle);
    let referrer = layout::bundle_referrer(&manifest.descriptor, &bundle_desc, "x");
    let mut listed = referrer.descriptor.clone();
    listed.artifact_type = Some(layout::BUNDLE.into());
    let index = layout::with_referrer(Default::default(), listed);
    let repository = "policies/pii";
    registry
        .raw_push(repository, "stable", &[&config, &evil], &manifest.bytes)
        .await;
    registry
        .raw_push(
            repository,
            &referrer.descriptor.digest,
            &[layout::EMPTY_BYTES, &bundle],
            &referrer.bytes,
        )
        .await;
    let fallback = layout::fallback_tag(&manifest.descriptor.digest);
    registry
        .put_manifest(repository, &fallback, layout::INDEX, &index.bytes)
        .await;
    for dir in &dirs {
        eventually(30, "a registry-artifact-refused alert", || {
            alerts(dir.path())
                .iter()
                .any(|a| a["rule"] == "registry-artifact-refused")
        })
        .await;
        let alert = alerts(dir.path())
            .into_iter()
            .find(|a| a["rule"] == "registry-artifact-refused")
            .unwrap();
        assert_eq!(alert["severity"], "critical");
        assert!(
            alert["summary"]
                .as_str()
                .unwrap()
                .contains("digest mismatch"),
            "{alert}"
        );
        let journal = std::fs::read_to_string(dir.path().join("lifecycle/events.jsonl")).unwrap();
        assert!(journal.contains("\"registry-refused\""), "{journal}");
    }
    for h in &hosts {
        assert_eq!(h.version().as_deref(), Some("1.1.0"), "v2 stays");
        assert_eq!(
            h.echo("mail bob@example.org").await,
            "You said: mail [EMAIL_1]"
        );
    }

    // The registry goes away: the hosts keep serving, and say the registry is down.
    registry.stop();
    for dir in &dirs {
        eventually(30, "a registry-unreachable alert", || {
            alerts(dir.path())
                .iter()
                .any(|a| a["rule"] == "registry-unreachable")
        })
        .await;
    }
    for h in &hosts {
        assert_eq!(
            h.echo("mail bob@example.org").await,
            "You said: mail [EMAIL_1]"
        );
    }
    // A host restarted while the registry is down starts from its verified cache.
    drop(hosts.pop());
    let restarted = ServedHost::start(dirs[1].path()).await.unwrap();
    assert_eq!(restarted.version().as_deref(), Some("1.1.0"));
    assert_eq!(
        restarted.echo("mail bob@example.org").await,
        "You said: mail [EMAIL_1]"
    );
    hosts.push(restarted);
    // A host with an empty cache cannot start without the registry, and says why.
    let fresh = host_dir(&registry, &trust, &registry.reference(tag), "");
    let refused = ServedHost::start(fresh.path()).await.err().unwrap();
    assert!(refused.contains("has not been pulled"), "{refused}");
    assert!(refused.contains("unreachable"), "{refused}");

    // The registry returns; v4 is published; both hosts pick it up.
    registry.restart();
    push_release(&registry, &release(work.path(), &signer, "1.3.0", 4), tag);
    eventually(60, "both hosts run v4", || {
        hosts
            .iter()
            .all(|h| h.version().as_deref() == Some("1.3.0"))
    })
    .await;

    // v5 verifies but fails its own signed self-test: the hosts reject it, keep v4,
    // alert, and a host restarted now (registry up) starts on v4, not on v5.
    let wasm = guest(PII);
    let mut p = predicate("pii", 5, Kind::ContentPolicy);
    p.version = "1.4.0".into();
    p.self_test = vec![json!({
        "name": "wrongly expects the email to pass",
        "check": "request",
        "messages": [{"role": "user", "content": "mail bob@example.org"}],
        "expect": {"verdict": "allow"}
    })];
    let v5 = work.path().join("pii-1.4.0.wasm");
    std::fs::write(&v5, &wasm).unwrap();
    std::fs::write(sidecar_path(&v5), bundle_bytes(&wasm, p, &[&signer])).unwrap();
    push_release(&registry, &v5, tag);
    for dir in &dirs {
        eventually(30, "a refused self-test alert", || {
            alerts(dir.path()).iter().any(|a| {
                a["rule"] == "registry-artifact-refused"
                    && a["summary"].as_str().unwrap().contains("self-test")
            })
        })
        .await;
    }
    assert!(
        hosts
            .iter()
            .all(|h| h.version().as_deref() == Some("1.3.0"))
    );
    drop(hosts.pop());
    let restarted = ServedHost::start(dirs[1].path()).await.unwrap();
    assert_eq!(restarted.version().as_deref(), Some("1.3.0"));
    // Even with the refusal forgotten, the start-up pulls v5, fails to load it, and
    // starts on v4.
    drop(restarted);
    std::fs::remove_dir_all(dirs[1].path().join("registry-cache/refused")).unwrap();
    let restarted = ServedHost::start(dirs[1].path()).await.unwrap();
    assert_eq!(restarted.version().as_deref(), Some("1.3.0"));
    let refusals = std::fs::read_dir(dirs[1].path().join("registry-cache/refused")).unwrap();
    assert_eq!(refusals.count(), 1, "v5 is refused again");
}

fn publish_index(registry: &TestRegistry, key: &Path, extra: &[&str], policy: &str) -> String {
    let out = portcullis(
        &[
            &["index", "publish", "--insecure-registry", &registry.host()][..],
            &["--key", key.to_str().unwrap(), "--name", "prod"],
            extra,
            &[
                "--policy",
                policy,
                &registry.reference("policies/sets:prod"),
            ],
        ]
        .concat(),
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// With a signed policy-set index, hosts run exactly the digests it lists: a moved
/// tag changes nothing until a new index is published; a pinned digest outside the
/// index, a replayed older index and an index for another set are refused (alerts);
/// an index close to expiry raises a warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_index_pins_the_fleet_to_its_digests() {
    let Some(registry) = TestRegistry::start(None) else {
        return;
    };
    let (work, signer, trust) = workbench(76);
    let trust = std::fs::read_to_string(trust).unwrap();
    let key_path = work.path().join("ci.pem");
    portcullis::artifact::keys::write_pair(&signer, &key_path).unwrap();
    let tag = "policies/pii:stable";
    push_release(&registry, &release(work.path(), &signer, "1.0.0", 1), tag);
    let pii = format!("pii={}", registry.reference(tag));
    let first = publish_index(&registry, &key_path, &[], &pii);
    let index = format!(
        "index = \"oci://{}\"\nindex_name = \"prod\"\nindex_warn_hours = 6",
        registry.reference("policies/sets:prod")
    );
    let dir = host_dir(&registry, &trust, &registry.reference(tag), &index);
    let host = ServedHost::start(dir.path()).await.unwrap();
    assert_eq!(host.version().as_deref(), Some("1.0.0"));

    // The tag moves to v2, the index still lists v1: nothing changes.
    push_release(&registry, &release(work.path(), &signer, "1.1.0", 2), tag);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        host.version().as_deref(),
        Some("1.0.0"),
        "the index decides"
    );

    // A host pinned to v2 while the index lists v1 refuses to start on it.
    let v2_digest = portcullis(
        &[
            "push",
            "--insecure-registry",
            &registry.host(),
            release(work.path(), &signer, "1.1.0", 2).to_str().unwrap(),
            &registry.reference(tag),
        ],
        &[],
    );
    let v2 = String::from_utf8_lossy(&v2_digest.stdout)
        .trim()
        .trim_start_matches("oci://")
        .to_string();
    let pinned = host_dir(&registry, &trust, &v2, &index);
    let refused = ServedHost::start(pinned.path()).await.err().unwrap();
    assert!(
        refused.contains("is not the digest the signed index lists"),
        "{refused}"
    );

    // A new index with v2: the host converges.
    publish_index(&registry, &key_path, &[], &pii);
    eventually(30, "the host runs v2", || {
        host.version().as_deref() == Some("1.1.0")
    })
    .await;

    // Replaying the first index (sequence 1) is refused; v2 stays.
    let first_digest = first.rsplit_once('@').unwrap().1;
    let (status, old) = registry
        .get(
            &format!("policies/sets/manifests/{first_digest}"),
            layout::MANIFEST,
        )
        .await;
    assert_eq!(status, 200);
    registry
        .put_manifest("policies/sets", "prod", layout::MANIFEST, &old)
        .await;
    eventually(30, "a refused-index alert", || {
        alerts(dir.path()).iter().any(|a| {
            a["rule"] == "registry-artifact-refused"
                && a["summary"].as_str().unwrap().contains("rollback")
        })
    })
    .await;
    assert_eq!(host.version().as_deref(), Some("1.1.0"));

    // An index signed by a key the trust store scopes to other names is refused.
    let narrow = work.path().join("narrow");
    std::fs::create_dir(&narrow).unwrap();
    let other = key(77);
    let other_path = narrow.join("other.pem");
    portcullis::artifact::keys::write_pair(&other, &other_path).unwrap();
    let scoped = format!("{trust}\n{}", key_entry(&other, "names = [\"pii\"]"));
    std::fs::write(dir.path().join("trust.toml"), scoped).unwrap();
    publish_index(&registry, &other_path, &["--sequence", "9"], &pii);
    eventually(30, "an out-of-scope index alert", || {
        alerts(dir.path()).iter().any(|a| {
            a["rule"] == "registry-artifact-refused"
                && a["summary"]
                    .as_str()
                    .unwrap()
                    .contains("may not sign policy \"prod\"")
        })
    })
    .await;

    // A valid index that expires within index_warn_hours: warned.
    publish_index(
        &registry,
        &key_path,
        &["--sequence", "10", "--expires-hours", "1"],
        &pii,
    );
    eventually(30, "a policy-set-expiring alert", || {
        alerts(dir.path())
            .iter()
            .any(|a| a["rule"] == "policy-set-expiring")
    })
    .await;
    assert_eq!(host.version().as_deref(), Some("1.1.0"));
}

/// A registry that lies: it serves other bytes than the digest names, and a blob far
/// larger than its manifest announces. The client checks every digest and stops
/// reading at the size limit.
#[tokio::test]
async fn a_lying_registry_is_caught_by_digest_and_size_checks() {
    use axum::extract::Path as UrlPath;
    use portcullis::registry::{ArtifactRef, Options, Registry, RegistryError};

    let big = vec![0u8; 3 << 20];
    let big_desc = Descriptor::of(layout::WASM_LAYER, &big);
    // Announces 1 KB for a 3 MiB blob.
    let mut small = big_desc.clone();
    small.size = 1024;
    let config = layout::wasm_config(&small, "w", &[]);
    let manifest = layout::policy_manifest(
        &Descriptor::of(layout::WASM_CONFIG, &config),
        &small,
        "pii",
        "1.0.0",
    );
    let good_digest = manifest.descriptor.digest.clone();
    let liar_digest = Descriptor::of("", b"something else").digest;
    let body = manifest.bytes.clone();
    let app = axum::Router::new()
        .route("/v2/", axum::routing::get(|| async { "{}" }))
        .route(
            "/v2/p/pii/manifests/{reference}",
            axum::routing::get(move |UrlPath(_reference): UrlPath<String>| {
                let body = body.clone();
                async move { ([("content-type", layout::MANIFEST)], body) }
            }),
        )
        .route(
            "/v2/p/pii/blobs/{digest}",
            axum::routing::get(move || {
                let big = big.clone();
                async move { big }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = Registry::new(Options {
        insecure: vec![address.to_string()],
        max_blob_bytes: 1 << 20,
        ..Options::default()
    });

    // Asked for one digest, served a manifest with another.
    let asked = ArtifactRef::parse(&format!("{address}/p/pii@{liar_digest}")).unwrap();
    let err = client.fetch_policy(&asked).await.unwrap_err();
    assert!(
        matches!(&err, RegistryError::DigestMismatch { expected, actual, .. }
            if *expected == liar_digest && *actual == good_digest),
        "{err}"
    );
    assert!(err.to_string().contains("digest mismatch"), "{err}");

    // The manifest is honest, the blob is not: cut off at the limit.
    let honest = ArtifactRef::parse(&format!("{address}/p/pii@{good_digest}")).unwrap();
    let err = client.fetch_policy(&honest).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::TooLarge { limit, .. } if limit == 1 << 20),
        "{err}"
    );
}

/// TLS by default: a registry with a private CA is refused (and the message says
/// what to do) until its CA is given; plain HTTP is never tried.
#[tokio::test]
async fn tls_registries_need_their_ca_and_plain_http_is_never_a_fallback() {
    let Some(registry) = TestRegistry::start_tls() else {
        return;
    };
    let (work, signer, trust) = workbench(78);
    let wasm_path = release(work.path(), &signer, "1.0.0", 1);
    let target = registry.reference("policies/pii:1.0.0");
    let wasm = wasm_path.to_str().unwrap();

    let untrusted = portcullis(&["push", wasm, &target], &[]);
    assert_eq!(untrusted.status.code(), Some(2));
    assert!(
        stderr(&untrusted).contains("--ca-file"),
        "{}",
        stderr(&untrusted)
    );

    let ca = registry.ca();
    let ca = ca.to_str().unwrap();
    let pushed = portcullis(&["push", "--ca-file", ca, wasm, &target], &[]);
    assert!(pushed.status.success(), "{}", stderr(&pushed));
    let out = work.path().join("out");
    let pulled = pull_policy(&["--ca-file", ca], &trust, &out, &target);
    assert!(pulled.status.success(), "{}", stderr(&pulled));

    // Listed as insecure, it is spoken to in plain HTTP only, which a TLS server refuses.
    let plain = pull_policy(
        &["--insecure-registry", &registry.host()],
        &trust,
        &out,
        &target,
    );
    assert_eq!(plain.status.code(), Some(2), "{}", stderr(&plain));
    assert!(stderr(&plain).contains("HTTP 400"), "{}", stderr(&plain));
}
