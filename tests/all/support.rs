//! Shared test helpers: build the guest components once per test run, load policies.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use portcullis::bindings::{ChatRequest, Message, RequestContext, Role};
use portcullis::engine::{Engine, EngineOptions, Limits};
use portcullis::policy::Policy;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

/// Build every guest (policies and test guests) for wasm32-wasip2 with the `policy`
/// profile, once, and return the directory holding the `.wasm` files.
pub fn guests() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| root().join("target"), PathBuf::from);
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = std::process::Command::new(cargo)
            .current_dir(root())
            .args([
                "build",
                "--quiet",
                "--profile",
                "policy",
                "--target",
                "wasm32-wasip2",
            ])
            .args([
                "-p",
                "portcullis-test-hostile",
                "-p",
                "portcullis-policy-prompt-injection",
            ])
            .args([
                "-p",
                "portcullis-policy-pii",
                "-p",
                "portcullis-policy-secrets",
            ])
            .args(["-p", "portcullis-policy-tool-allowlist"])
            .args(["-p", "portcullis-policy-keyword-guard"])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the guest components failed");
        target.join("wasm32-wasip2").join("policy")
    })
}

/// The bytes of a built guest, e.g. `portcullis_test_hostile`.
pub fn guest(name: &str) -> Vec<u8> {
    let path = guests().join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// One engine for the whole test binary.
pub fn engine() -> Arc<Engine> {
    static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| Engine::new(&EngineOptions::default()).expect("engine"))
        .clone()
}

/// Load a built guest with a JSON config and limits.
pub fn load(name: &str, config: &str, limits: Limits) -> Policy {
    engine()
        .load(name, &guest(name), config.to_string(), limits)
        .expect("policy loads")
}

/// Run the real `portcullis dev-sign` for `config`, with one `<name>/policy.toml`
/// signing manifest per policy under `manifests`.
pub fn dev_sign(config: &Path, manifests: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("dev-sign")
        .arg("--config")
        .arg(config)
        .arg("--manifests")
        .arg(manifests)
        .output()
        .expect("portcullis runs")
}

/// A request with one user message and no tools.
pub fn user_request(text: &str) -> ChatRequest {
    ChatRequest {
        context: RequestContext {
            request_id: "r1".into(),
            client_id: "c1".into(),
            model: "m".into(),
            metadata: Vec::new(),
        },
        messages: vec![Message {
            role: Role::User,
            content: text.into(),
            name: None,
            tool_call_id: None,
        }],
        tools: Vec::new(),
    }
}

/// `examples/portcullis.toml` as the README's main job runs it, in a directory of
/// its own: the built example policies copied there and signed by `portcullis
/// dev-sign` (the real command) with their manifests, the development trust store
/// beside them, without its observability sections. Done once per test run; the text
/// refers to absolute paths only.
pub fn example_config_text() -> String {
    static SIGNED: OnceLock<String> = OnceLock::new();
    SIGNED
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("temp dir").keep();
            for name in [
                "portcullis_policy_prompt_injection",
                "portcullis_policy_pii",
                "portcullis_policy_secrets",
                "portcullis_policy_tool_allowlist",
            ] {
                let file = format!("{name}.wasm");
                std::fs::copy(guests().join(&file), dir.join(&file)).expect("copy policy");
            }
            let full = std::fs::read_to_string(root().join("examples/portcullis.toml"))
                .expect("example config");
            // Without the observability sections: tests that want an audit log or
            // alerts configure directories of their own.
            let policies = full
                .split("# --- Observability")
                .next()
                .expect("split yields a first part");
            let text = policies
                .replace(
                    "../target/wasm32-wasip2/policy/",
                    &format!("{}/", dir.display()),
                )
                .replace(
                    "../target/portcullis-dev/",
                    &format!("{}/dev/", dir.display()),
                )
                .replace(
                    "\"../policies/",
                    &format!("\"{}/policies/", root().display()),
                );
            let config = dir.join("portcullis.toml");
            std::fs::write(&config, &text).expect("write config");
            let out = dev_sign(&config, &root().join("policies"));
            assert!(
                out.status.success(),
                "dev-sign failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            text
        })
        .clone()
}

/// The example configuration, parsed.
pub fn example_config() -> portcullis::config::PipelineConfig {
    portcullis::config::PipelineConfig::parse(
        &example_config_text(),
        Path::new("portcullis.toml"),
        root(),
    )
    .expect("example config parses")
}

/// A pipeline configuration whose component paths resolve against [`guests`], with
/// verification switched off (`allow_unsigned`): for tests about other things.
pub fn unsigned_guest_config(text: &str) -> portcullis::config::PipelineConfig {
    portcullis::config::PipelineConfig::parse(
        &format!("[trust]\nallow_unsigned = true\n{text}"),
        Path::new("test.toml"),
        guests().to_path_buf(),
    )
    .expect("test configuration parses")
}

/// Debian's `docker-registry` (CNCF Distribution 2.8) on 127.0.0.1; killed when dropped. Its storage survives
/// [`TestRegistry::stop`], so [`TestRegistry::restart`] brings the same content back.
pub struct TestRegistry {
    /// Where it listens.
    pub address: std::net::SocketAddr,
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The registry binary, or `None` outside CI (the test is then skipped, loudly).
pub fn registry_bin() -> Option<PathBuf> {
    toolchain("PORTCULLIS_REGISTRY_BIN", "Debian's docker-registry")
}

impl TestRegistry {
    /// Start a registry; with `user`, Basic auth (htpasswd, bcrypt) is required.
    pub fn start(user: Option<(&str, &str)>) -> Option<TestRegistry> {
        Self::launch(user, false)
    }

    /// Start a registry speaking TLS only, with a certificate for 127.0.0.1 from a
    /// CA of its own ([`TestRegistry::ca`]).
    pub fn start_tls() -> Option<TestRegistry> {
        Self::launch(None, true)
    }

    /// The CA certificate (PEM file) of a TLS registry.
    pub fn ca(&self) -> std::path::PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn launch(user: Option<(&str, &str)>, tls: bool) -> Option<TestRegistry> {
        registry_bin()?;
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let auth = match user {
            None => String::new(),
            Some((name, password)) => {
                let hash = bcrypt::hash(password, 5).unwrap();
                std::fs::write(dir.path().join("htpasswd"), format!("{name}:{hash}\n")).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                    dir.path().join("htpasswd").display()
                )
            }
        };
        let tls = if tls {
            let ca_key = rcgen::KeyPair::generate().unwrap();
            let mut ca = rcgen::CertificateParams::new(Vec::new()).unwrap();
            ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            let ca_cert = ca.self_signed(&ca_key).unwrap();
            let key = rcgen::KeyPair::generate().unwrap();
            let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
            let issuer = rcgen::Issuer::new(ca, ca_key);
            let cert = leaf.signed_by(&key, &issuer).unwrap();
            std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
            std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
            std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
            format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                dir.path().join("cert.pem").display(),
                dir.path().join("key.pem").display()
            )
        } else {
            String::new()
        };
        std::fs::write(
            dir.path().join("config.yml"),
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: test-only\n{tls}{auth}",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let mut registry = TestRegistry {
            address: ([127, 0, 0, 1], port).into(),
            dir,
            child: None,
        };
        registry.restart();
        Some(registry)
    }

    /// Start (again) on the same port and storage; wait until it answers.
    pub fn restart(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("registry.log")).unwrap();
        let child = std::process::Command::new(registry_bin().unwrap())
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry starts");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(self.address).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the registry did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `host:port`.
    pub fn host(&self) -> String {
        self.address.to_string()
    }

    /// `host:port/repository:tag`.
    pub fn reference(&self, repository_and_tag: &str) -> String {
        format!("{}/{repository_and_tag}", self.host())
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (for servers the tests start).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Configuration lines for a gateway on a free port that accepts the development key
/// (`sk-portcullis-dev`, the key [`ServedHost::chat`] sends).
pub const DEV_GATEWAY: &str = r#"[gateway]
listen = "127.0.0.1:0"
[[gateway.clients]]
id = "dev"
key_sha256 = "0c0c414e9aa314ab460edeeb399e1812117caafbfd2b9aaf76f0097e522afcb8"
"#;

/// A policy host started from a configuration file, as `portcullis serve` starts it
/// (registry policies pulled first), behind the gateway on 127.0.0.1; stopped when
/// dropped.
pub struct ServedHost {
    /// The policy host.
    pub host: Arc<portcullis::lifecycle::PolicyHost>,
    address: std::net::SocketAddr,
    _poller: Option<portcullis::registry::source::Poller>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl ServedHost {
    /// Start on `dir/portcullis.toml`; `Err` is the start-up error's text.
    pub async fn start(dir: &Path) -> Result<ServedHost, String> {
        let (host, poller) =
            portcullis::registry::source::start_host(&engine(), &dir.join("portcullis.toml"))
                .await
                .map_err(|e| e.to_string())?;
        let gateway = Arc::new(portcullis::gateway::Gateway::new(host.clone()).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(portcullis::gateway::serve(gateway, listener, async move {
            let _ = stopped.await;
        }));
        Ok(ServedHost {
            host,
            address,
            _poller: poller,
            stop: Some(stop),
        })
    }

    /// The first policy's active version.
    pub fn version(&self) -> Option<String> {
        self.host.snapshot().entries()[0].version.clone()
    }

    /// A chat call with one user message and the development key: status and body.
    pub async fn chat(&self, text: &str) -> (u16, serde_json::Value) {
        self.post(serde_json::json!({"messages": [{"role": "user", "content": text}]}))
            .await
    }

    /// POST a chat completion request body as the development client.
    pub async fn post(&self, body: serde_json::Value) -> (u16, serde_json::Value) {
        let response = reqwest::Client::new()
            .post(format!("http://{}/v1/chat/completions", self.address))
            .bearer_auth("sk-portcullis-dev")
            .json(&body)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// A chat call that must succeed: the mock model's answer (it echoes the prompt
    /// as the policies left it).
    pub async fn echo(&self, text: &str) -> String {
        let (status, body) = self.chat(text).await;
        assert_eq!(status, 200, "{body}");
        body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

impl Drop for ServedHost {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A third-party tool (a language toolchain, the registry) named by an environment
/// variable (set by `.ci/run`), or `None` outside CI (the test is then skipped,
/// loudly).
fn toolchain(variable: &str, what: &str) -> Option<PathBuf> {
    let tool = std::env::var_os(variable).map(PathBuf::from);
    match tool.filter(|t| t.is_file()) {
        Some(tool) => Some(tool),
        None => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must provide {what} ({variable}, see .ci/run)"
            );
            eprintln!("SKIPPED: no {what} (set {variable}, see .ci/run)");
            None
        }
    }
}

/// A language other than Rust, as `portcullis build --lang` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    Python,
    Js,
    C,
}

impl Lang {
    pub fn name(self) -> &'static str {
        match self {
            Lang::Python => "python",
            Lang::Js => "js",
            Lang::C => "c",
        }
    }

    /// Whether this machine has the toolchain `portcullis build` uses (named by the
    /// variable `.ci/run` sets, which `portcullis build` reads too).
    pub fn available(self) -> bool {
        match self {
            Lang::Python => toolchain("PORTCULLIS_COMPONENTIZE_PY", "componentize-py"),
            Lang::Js => toolchain("PORTCULLIS_COMPONENTIZE_JS", "componentize-js"),
            Lang::C => toolchain("PORTCULLIS_CLANG", "clang with wasi-libc"),
        }
        .is_some()
    }

    /// A port's sources below `policies/<name>/`, as `portcullis build --lang` takes them.
    fn sources(self, dir: &Path) -> Vec<PathBuf> {
        match self {
            Lang::Python => vec![dir.join("python/app.py")],
            Lang::Js => vec![dir.join("js/policy.js")],
            Lang::C => {
                let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("c"))
                    .expect("the C port exists")
                    .map(|e| e.unwrap().path())
                    .filter(|p| p.extension().is_some_and(|x| x == "c"))
                    .collect();
                files.sort();
                files
            }
        }
    }
}

/// The `lang` port of the example policy `policy` (`policies/<policy>/<lang>/`), built
/// once per test run by `portcullis build` for the world its manifest's `kind` names;
/// `None` (SKIPPED) outside CI when the toolchain is missing.
pub fn port(policy: &str, lang: Lang) -> Option<&'static Path> {
    type Cells = HashMap<(String, Lang), &'static OnceLock<PathBuf>>;
    static CELLS: OnceLock<Mutex<Cells>> = OnceLock::new();
    if !lang.available() {
        return None;
    }
    let cell: &'static OnceLock<PathBuf> = CELLS
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .entry((policy.to_string(), lang))
        .or_insert_with(|| Box::leak(Box::default()));
    Some(cell.get_or_init(|| {
        let dir = root().join("policies").join(policy);
        let manifest =
            portcullis::artifact::manifest::load(&dir.join("policy.toml")).expect("manifest");
        let out = guests().join(format!("{}_{}.wasm", policy.replace('-', "_"), lang.name()));
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .current_dir(root())
            .args(["build", "--lang", lang.name(), "--world"])
            .arg(manifest.kind.name())
            .arg("--out")
            .arg(&out)
            .args(lang.sources(&dir))
            .status()
            .expect("portcullis runs");
        assert!(status.success(), "building the {lang:?} {policy} failed");
        out
    }))
}
