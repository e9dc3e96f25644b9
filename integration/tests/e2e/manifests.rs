//! The image and the cluster configuration hold together: every YAML document in
//! `calico-config/` passes its schema (Kubernetes kinds: kubernetes-validate's OpenAPI schemas;
//! Calico kinds: the upstream CRDs), the Dockerfile copies what exists and runs what its build
//! produces, the built driver runs, the installer puts it where the calico-node patches point
//! Felix, and the CNI configuration, RBAC and DaemonSets agree with each other.

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use calico_vpp_driver::cli::Cli;
use serde_yaml::Value;

const CALICO_CRDS: &str = "../shared/upstream/calico-87c15906/crd";
const VALIDATOR: &str = ".ci/validate-manifests.py";
const VALIDATOR_NEEDS: &str = "python3 with kubernetes-validate: \
    python3 -m pip install 'kubernetes-validate==1.34.1'";
/// Where the installer puts the binary, in calico-node (an emptyDir).
const INSTALL_DIR: &str = "/opt/calico-vpp/bin";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

fn read(rel: &str) -> String {
    let path = repo().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// Every `.yaml`/`.yml` file under `calico-config/`, relative to the repository, sorted.
fn manifest_files() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&repo().join("calico-config"), &mut files);
    let mut files: Vec<String> = files
        .iter()
        .map(|p| {
            p.strip_prefix(repo())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in calico-config/");
    files
}

/// The documents of a manifest file, split on `---` lines as the validator splits them
/// (empty documents, e.g. comments only, left out).
fn documents(rel: &str) -> Vec<Value> {
    let text = read(rel);
    let mut docs = Vec::new();
    let mut current = String::new();
    for line in text.lines().chain(std::iter::once("---")) {
        if line.trim_end() == "---" {
            let doc: Value = serde_yaml::from_str(&current)
                .unwrap_or_else(|e| panic!("{rel}: document {}: {e}", docs.len()));
            if !doc.is_null() {
                docs.push(doc);
            }
            current.clear();
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    docs
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn pod_spec(ds: &Value) -> &Value {
    &ds["spec"]["template"]["spec"]
}

fn named<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_sequence()
        .unwrap_or_else(|| panic!("not a list: {list:?}"))
        .iter()
        .find(|c| c["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("nothing named {name}"))
}

fn env_value<'a>(container: &'a Value, var: &str) -> &'a str {
    named(&container["env"], var)["value"]
        .as_str()
        .unwrap_or_else(|| panic!("{var} has no string value"))
}

/// The mount path of `volume` in `container`, and the volume's definition in the pod.
fn mount<'a>(pod: &'a Value, container: &Value, volume: &str) -> (String, &'a Value) {
    let m = named(&container["volumeMounts"], volume);
    let path = m["mountPath"].as_str().unwrap().to_string();
    (path, named(&pod["volumes"], volume))
}

fn python_has_validator() -> bool {
    Command::new("python3")
        .args([
            "-c",
            "import kubernetes_validate, jsonschema, yaml, referencing",
        ])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The upstream CRD directory, or `None` (SKIP printed) outside CI when it is absent; in CI
/// (CI=true) its absence fails the test.
fn calico_crds() -> Option<PathBuf> {
    let dir = repo().join(CALICO_CRDS);
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{dir:?} is missing: the Calico CRDs are test inputs from ../shared/upstream");
    }
    println!("SKIP: {dir:?} is missing (the upstream Calico CRDs)");
    None
}

/// Runs the validator on `files` (absolute or relative to the repository).
fn validate(crds: &Path, files: &[String]) -> (bool, String) {
    assert!(python_has_validator(), "needs {VALIDATOR_NEEDS}");
    let out = Command::new("python3")
        .arg(repo().join(VALIDATOR))
        .arg("--crd-dir")
        .arg(crds)
        .args(files)
        .current_dir(repo())
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.trim().is_empty() || out.status.code() == Some(1),
        "validator crashed: {stderr}"
    );
    (out.status.success(), stdout + &stderr)
}

#[test]
#[ignore = "needs python3 with kubernetes-validate (pip install kubernetes-validate==1.34.1)"]
fn every_manifest_document_passes_its_schema() {
    let Some(crds) = calico_crds() else { return };
    let files = manifest_files();
    let (ok, report) = validate(&crds, &files);
    println!("{report}");
    assert!(ok, "some documents do not pass their schema:\n{report}");
    // Every document the Rust side sees was validated, none skipped.
    for file in &files {
        for (index, doc) in documents(file).iter().enumerate() {
            let line = format!("OK {file}#{index} {}/", doc["kind"].as_str().unwrap());
            assert!(
                report.lines().any(|l| l.starts_with(&line)),
                "{file} document {index} was not validated:\n{report}"
            );
        }
    }
}

#[test]
#[ignore = "needs python3 with kubernetes-validate (pip install kubernetes-validate==1.34.1)"]
fn a_broken_manifest_fails_validation() {
    let Some(crds) = calico_crds() else { return };
    let dir = tempfile::tempdir().unwrap();
    let felix = read("calico-config/felix-configuration.yaml");
    let socket_node = read("calico-config/calico-vpp-node.yaml");
    let node_patch = read("calico-config/calico-node-env.yaml");
    let rbac = read("calico-config/rbac.yaml");
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "a duration given as a number",
            felix.replace("reportingInterval: 30s", "reportingInterval: 30"),
            "spec.reportingInterval: 30 is not of type 'string'",
        ),
        (
            "a value outside the CRD's enum",
            felix.replace(
                "programClusterRoutes: Enabled",
                "programClusterRoutes: Always",
            ),
            "spec.programClusterRoutes: 'Always' is not one of",
        ),
        (
            "a field the CRD does not have",
            felix.replace("spec:\n", "spec:\n  dataplaneDriverArgs: [run]\n"),
            "Additional properties are not allowed ('dataplaneDriverArgs'",
        ),
        (
            "a port given as a string",
            felix.replace("port: 22", "port: \"22\""),
            "spec.failsafeInboundHostPorts.0.port: '22' is not of type 'integer'",
        ),
        (
            "a container field of the wrong type",
            socket_node.replace("args: [\"run\"]", "args: run"),
            "containers.1.args: 'run' is not of type 'array'",
        ),
        (
            "a misspelt container field",
            socket_node.replace("volumeMounts:", "volumeMount:"),
            "Additional properties are not allowed ('volumeMount'",
        ),
        (
            "a patch validated as a whole object",
            node_patch.replace("# validate: patch\n", ""),
            "spec: 'selector' is a required property",
        ),
        (
            "a Kubernetes kind with no schema",
            rbac.replace("kind: ClusterRoleBinding", "kind: ClusterRoleBindingz"),
            "no Kubernetes 1.32.0 schema for rbac.authorization.k8s.io/v1 ClusterRoleBindingz",
        ),
        (
            "a Calico kind with no upstream CRD",
            felix.replace("kind: FelixConfiguration", "kind: FelixConfig"),
            "no upstream CRD for Calico kind FelixConfig",
        ),
    ];
    for (what, text, expected) in cases {
        let path = dir.path().join("broken.yaml");
        std::fs::write(&path, &text).unwrap();
        let (ok, report) = validate(&crds, &[path.to_string_lossy().into_owned()]);
        assert!(!ok, "{what}: accepted:\n{report}");
        assert!(
            report
                .lines()
                .any(|l| l.starts_with("FAIL") && l.contains(expected)),
            "{what}: no FAIL line with {expected:?}:\n{report}"
        );
    }
}

/// The Dockerfile's instructions, continuation lines joined, comments left out.
fn dockerfile() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in read("Dockerfile").lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && pending.is_empty()) {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(t);
        let (op, rest) = pending.split_once(' ').unwrap();
        out.push((op.to_uppercase(), rest.trim().to_string()));
        pending.clear();
    }
    out
}

/// The argument of a JSON (exec) form instruction.
fn exec_form(rest: &str) -> Vec<String> {
    serde_json::from_str(rest).unwrap_or_else(|e| panic!("not an exec form: {rest}: {e}"))
}

struct Stage {
    name: String,
    instructions: Vec<(String, String)>,
}

fn stages() -> Vec<Stage> {
    let mut stages: Vec<Stage> = Vec::new();
    for (op, rest) in dockerfile() {
        if op == "FROM" {
            let words: Vec<&str> = rest.split_whitespace().collect();
            assert!(
                words.len() == 3 && words[1].eq_ignore_ascii_case("as"),
                "every stage is named: FROM {rest}"
            );
            stages.push(Stage {
                name: words[2].to_string(),
                instructions: Vec::new(),
            });
        } else {
            stages
                .last_mut()
                .expect("FROM first")
                .instructions
                .push((op, rest));
        }
    }
    stages
}

/// `(from stage, sources, destination)` of each COPY of a stage.
fn copies(stage: &Stage) -> Vec<(Option<String>, Vec<String>, String)> {
    stage
        .instructions
        .iter()
        .filter(|(op, _)| op == "COPY")
        .map(|(_, rest)| {
            let mut words: Vec<String> = rest.split_whitespace().map(String::from).collect();
            let from = words
                .iter()
                .position(|w| w.starts_with("--from="))
                .map(|i| words.remove(i)["--from=".len()..].to_string());
            assert!(
                words.iter().all(|w| !w.starts_with("--")),
                "COPY {rest}: unexpected flag"
            );
            let dest = words.pop().unwrap();
            (from, words, dest)
        })
        .collect()
}

/// The value of `const NAME: &str = "..."` in a source file.
fn rust_str_const(rel: &str, name: &str) -> String {
    let text = read(rel);
    let line = text
        .lines()
        .find(|l| l.contains(&format!("const {name}: &str")))
        .unwrap_or_else(|| panic!("no const {name} in {rel}"));
    line.split('"').nth(1).unwrap().to_string()
}

/// The workspace members listed in Cargo.toml.
fn workspace_members() -> Vec<String> {
    let toml = read("Cargo.toml");
    let start = toml.find("members = [").expect("workspace members");
    let list = &toml[start..toml[start..].find(']').unwrap() + start];
    list.split('"')
        .skip(1)
        .step_by(2)
        .map(String::from)
        .collect()
}

#[test]
fn dockerfile_copies_what_exists_and_runs_what_the_build_produces() {
    let stages = stages();
    let names: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["build", "installer", "driver"]);
    let build = &stages[0];
    let build_runs: String = build
        .instructions
        .iter()
        .filter(|(op, _)| op == "RUN")
        .map(|(_, r)| r.as_str())
        .collect::<Vec<_>>()
        .join(" ");

    // The build stage copies sources that exist, and everything cargo needs.
    let mut copied = BTreeSet::new();
    for (from, sources, _) in copies(build) {
        assert_eq!(from, None);
        for s in sources {
            assert!(repo().join(&s).exists(), "COPY source {s} does not exist");
            copied.insert(s.trim_end_matches('/').to_string());
        }
    }
    let mut needed: Vec<String> = ["Cargo.toml", "Cargo.lock", "build.rs", "proto", "src"]
        .map(String::from)
        .to_vec();
    needed.extend(workspace_members().into_iter().filter(|m| m != "."));
    if read("Cargo.toml").contains("[[bench]]") {
        needed.push("benches".into());
    }
    for n in needed {
        assert!(
            copied
                .iter()
                .any(|c| n == *c || n.starts_with(&format!("{c}/"))),
            "the build stage does not copy {n}"
        );
    }

    // It builds the driver's binary under its Cargo name and lays out both names in /out/bin;
    // the second name is the one src/main.rs dispatches on.
    let bin = "calico-vpp-driver";
    assert!(read("Cargo.toml").contains(&format!("[[bin]]\nname = \"{bin}\"")));
    assert!(build_runs.contains(&format!(
        "cargo build --release --locked -p {bin} --bin {bin}"
    )));
    assert!(build_runs.contains(&format!("cp target/release/{bin} /out/bin/{bin}")));
    let proxy = rust_str_const("src/main.rs", "PROXY_ARGV0");
    assert_eq!(proxy, "calico-vpp-felix-proxy");
    assert!(build_runs.contains(&format!("ln -s {bin} /out/bin/{proxy}")));
    let produced: BTreeSet<String> = [bin.to_string(), proxy].into();

    for stage in &stages[1..] {
        // What the stage holds: files copied from the build's /out/bin or from the repository.
        let mut files = BTreeSet::new();
        for (from, sources, dest) in copies(stage) {
            match from.as_deref() {
                Some("build") => {
                    assert_eq!(sources, ["/out/bin/"], "{}: copies /out/bin/", stage.name);
                    assert!(dest.ends_with('/'));
                    files.extend(produced.iter().map(|p| format!("{dest}{p}")));
                }
                Some(other) => panic!("{}: COPY --from={other}: no such stage", stage.name),
                None => {
                    for s in &sources {
                        assert!(repo().join(s).is_file(), "COPY source {s} does not exist");
                    }
                    files.insert(dest);
                }
            }
        }
        let entrypoint = stage
            .instructions
            .iter()
            .find(|(op, _)| op == "ENTRYPOINT")
            .map(|(_, r)| exec_form(r))
            .unwrap_or_else(|| panic!("{}: no ENTRYPOINT", stage.name));
        assert!(
            files.contains(&entrypoint[0]),
            "{}: ENTRYPOINT {} is not in the image ({files:?})",
            stage.name,
            entrypoint[0]
        );
        let cmd = stage
            .instructions
            .iter()
            .find(|(op, _)| op == "CMD")
            .map(|(_, r)| exec_form(r))
            .unwrap();
        match stage.name.as_str() {
            "driver" => {
                assert_eq!(entrypoint, ["/usr/local/bin/calico-vpp-driver"]);
                let mut args = vec![bin.to_string()];
                args.extend(cmd);
                Cli::try_parse_args(&args).unwrap_or_else(|e| panic!("CMD {args:?}: {e}"));
            }
            "installer" => {
                assert_eq!(cmd, [INSTALL_DIR], "the installer fills {INSTALL_DIR}");
                assert!(files.contains("/usr/local/bin/calico-vpp-driver"));
            }
            other => panic!("unexpected stage {other}"),
        }
    }

    // The header's build commands name the targets, and the manifests use those images.
    let mut images = BTreeSet::new();
    for line in read("Dockerfile").lines() {
        if let Some(rest) = line
            .trim_start_matches('#')
            .trim()
            .strip_prefix("docker build")
        {
            let words: Vec<&str> = rest.split_whitespace().collect();
            let target = words[words.iter().position(|w| *w == "--target").unwrap() + 1];
            let tag = words[words.iter().position(|w| *w == "-t").unwrap() + 1];
            assert!(names.contains(&target), "no stage {target}");
            images.insert(tag.to_string());
        }
    }
    for file in manifest_files() {
        for doc in documents(&file) {
            let spec = pod_spec(&doc);
            for list in ["initContainers", "containers"] {
                for c in spec[list].as_sequence().into_iter().flatten() {
                    if let Some(image) = c["image"].as_str() {
                        if image.starts_with("calico-vpp-driver:")
                            || image.starts_with("calico-vpp-driver-installer:")
                        {
                            assert!(
                                images.contains(image),
                                "{file}: {image} is built by no target"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn driver_binary_runs_and_installs_under_both_names() {
    let bin = common::driver::driver_bin();
    let out = Command::new(bin).arg("--version").output().unwrap();
    assert!(out.status.success(), "{bin:?} --version: {out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("calico-vpp-driver {}", env!("CARGO_PKG_VERSION"))
    );

    // The installer's script, as the init container runs it.
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("bin");
    let out = Command::new("sh")
        .arg(repo().join("calico-config/install-driver.sh"))
        .arg(&dest)
        .env("CALICO_VPP_INSTALL_SOURCE", bin)
        .output()
        .unwrap();
    assert!(out.status.success(), "install-driver.sh: {out:?}");
    let out = Command::new(dest.join("calico-vpp-driver"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    // Under the proxy's name the binary is the relay (argv[0] dispatch).
    let out = Command::new(dest.join("calico-vpp-felix-proxy"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        help.contains("Usage: calico-vpp-felix-proxy felix-proxy"),
        "{help}"
    );
    // Installing again over the installed binary works (a restarted init container).
    let out = Command::new("sh")
        .arg(repo().join("calico-config/install-driver.sh"))
        .arg(&dest)
        .env("CALICO_VPP_INSTALL_SOURCE", bin)
        .output()
        .unwrap();
    assert!(out.status.success(), "second install: {out:?}");
}

#[test]
fn calico_node_patches_run_what_the_installer_installs() {
    for (file, driver) in [
        ("calico-config/calico-node-env.yaml", "calico-vpp-driver"),
        (
            "calico-config/calico-vpp-driver-socket.yaml",
            "calico-vpp-felix-proxy",
        ),
    ] {
        let docs = documents(file);
        let ds = find(&docs, "DaemonSet", "calico-node");
        let pod = pod_spec(ds);
        let installer = named(&pod["initContainers"], "install-calico-vpp-driver");
        assert_eq!(installer["args"][0].as_str(), Some(INSTALL_DIR));
        let (path, volume) = mount(pod, installer, "calico-vpp-driver-bin");
        assert_eq!(path, INSTALL_DIR);
        assert!(
            volume["emptyDir"].is_mapping(),
            "{file}: the bin volume is an emptyDir"
        );
        assert_eq!(
            installer["securityContext"]["runAsNonRoot"].as_bool(),
            Some(true)
        );
        let node = named(&pod["containers"], "calico-node");
        let (path, _) = mount(pod, node, "calico-vpp-driver-bin");
        assert_eq!(path, INSTALL_DIR);
        assert_eq!(
            env_value(node, "FELIX_DATAPLANEDRIVER"),
            format!("{INSTALL_DIR}/{driver}")
        );
    }
    let felix = documents("calico-config/felix-configuration.yaml");
    assert_eq!(
        felix[0]["spec"]["dataplaneDriver"].as_str(),
        Some(format!("{INSTALL_DIR}/calico-vpp-driver").as_str())
    );
}

#[test]
fn vpp_api_socket_is_shared_where_the_driver_looks() {
    let socket = documents("calico-config/calico-vpp-node.yaml");
    let fd = documents("calico-config/calico-vpp-node-fd-mode.yaml");
    let socket_ds = find(&socket, "DaemonSet", "calico-vpp-node");
    let fd_ds = find(&fd, "DaemonSet", "calico-vpp-node");
    // The same VPP in both modes.
    assert_eq!(
        named(&pod_spec(socket_ds)["containers"], "vpp"),
        named(&pod_spec(fd_ds)["containers"], "vpp")
    );
    let vpp_config = documents("calico-config/vpp-config.yaml");
    let startup = find(&vpp_config, "ConfigMap", "vpp-config")["data"]["startup.conf"]
        .as_str()
        .unwrap();
    let api_socket = startup
        .split("socksvr {")
        .nth(1)
        .and_then(|s| s.split("socket-name").nth(1))
        .map(|s| s.split_whitespace().next().unwrap().to_string())
        .expect("socksvr socket-name");
    let api_dir = Path::new(&api_socket).parent().unwrap().to_str().unwrap();

    let vpp_pod = pod_spec(socket_ds);
    let vpp = named(&vpp_pod["containers"], "vpp");
    let (path, volume) = mount(vpp_pod, vpp, "vpp-api");
    assert_eq!(path, api_dir);
    let host_dir = volume["hostPath"]["path"].as_str().unwrap().to_string();
    let (config_path, config) = mount(vpp_pod, vpp, "vpp-config");
    assert_eq!(config["configMap"]["name"].as_str(), Some("vpp-config"));
    assert_eq!(
        vpp["command"][2].as_str(),
        Some(format!("{config_path}/startup.conf").as_str())
    );

    // Socket mode: the driver container sees the same directory.
    let driver = named(&vpp_pod["containers"], "calico-vpp-driver");
    assert_eq!(env_value(driver, "CALICO_VPP_API_SOCKET"), api_socket);
    let (path, volume) = mount(vpp_pod, driver, "vpp-api");
    assert_eq!(path, api_dir);
    assert_eq!(volume["hostPath"]["path"].as_str(), Some(host_dir.as_str()));

    // fd mode: calico-node mounts the host directory VPP's socket is in.
    let patch = documents("calico-config/calico-node-env.yaml");
    let node_pod = pod_spec(find(&patch, "DaemonSet", "calico-node"));
    let node = named(&node_pod["containers"], "calico-node");
    assert_eq!(env_value(node, "CALICO_VPP_API_SOCKET"), api_socket);
    let (path, volume) = mount(node_pod, node, "vpp-api");
    assert_eq!(path, api_dir);
    assert_eq!(volume["hostPath"]["path"].as_str(), Some(host_dir.as_str()));
}

#[test]
fn cni_configuration_hands_pods_to_the_driver_over_grpc() {
    let docs = documents("calico-config/cni-config.yaml");
    let cm = find(&docs, "ConfigMap", "calico-config");
    let conflist: serde_json::Value =
        serde_json::from_str(cm["data"]["cni_network_config"].as_str().unwrap())
            .expect("the conflist is JSON");
    assert!(conflist["name"].is_string() && conflist["cniVersion"].is_string());
    let calico = &conflist["plugins"][0];
    assert_eq!(calico["type"], "calico");
    assert_eq!(calico["ipam"]["type"], "calico-ipam");
    assert_eq!(
        calico["dataplane_options"],
        serde_json::json!({"type": "grpc", "socket": "unix:///var/run/calico/cni-server.sock"})
    );
    // The driver (socket mode) has that host directory.
    let node = documents("calico-config/calico-vpp-node.yaml");
    let pod = pod_spec(find(&node, "DaemonSet", "calico-vpp-node"));
    let driver = named(&pod["containers"], "calico-vpp-driver");
    let (path, volume) = mount(pod, driver, "var-run-calico");
    assert_eq!(path, "/var/run/calico");
    assert_eq!(volume["hostPath"]["path"].as_str(), Some("/var/run/calico"));
}

#[test]
fn rbac_lets_the_driver_watch_services_and_endpointslices() {
    let docs = documents("calico-config/rbac.yaml");
    let role = find(&docs, "ClusterRole", "calico-vpp-driver");
    for (group, resource) in [("", "services"), ("discovery.k8s.io", "endpointslices")] {
        let rule = role["rules"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|r| {
                r["apiGroups"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .any(|g| g == group)
                    && r["resources"]
                        .as_sequence()
                        .unwrap()
                        .iter()
                        .any(|x| x == resource)
            })
            .unwrap_or_else(|| panic!("no rule for {resource}"));
        for verb in ["get", "list", "watch"] {
            assert!(
                rule["verbs"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .any(|v| v == verb),
                "{resource}: {verb}"
            );
        }
    }
    let binding = find(&docs, "ClusterRoleBinding", "calico-vpp-driver");
    assert_eq!(binding["roleRef"]["kind"].as_str(), Some("ClusterRole"));
    assert_eq!(
        binding["roleRef"]["name"].as_str(),
        Some("calico-vpp-driver")
    );
    let node = documents("calico-config/calico-vpp-node.yaml");
    let ds = find(&node, "DaemonSet", "calico-vpp-node");
    let sa = pod_spec(ds)["serviceAccountName"].as_str().unwrap();
    let ns = ds["metadata"]["namespace"].as_str().unwrap();
    find(&docs, "ServiceAccount", sa);
    find(&docs, "Namespace", ns);
    assert!(binding["subjects"]
        .as_sequence()
        .unwrap()
        .iter()
        .any(|s| { s["kind"] == "ServiceAccount" && s["name"] == sa && s["namespace"] == ns }));
}

/// Rules the API server and kubelet enforce that no schema states: no privilege escalation
/// forbidden together with privileged or SYS_ADMIN, no runAsNonRoot with user 0.
#[test]
fn security_contexts_are_ones_kubernetes_accepts() {
    for file in manifest_files() {
        for doc in documents(&file) {
            let spec = pod_spec(&doc);
            for list in ["initContainers", "containers"] {
                for c in spec[list].as_sequence().into_iter().flatten() {
                    let sc = &c["securityContext"];
                    let name = c["name"].as_str().unwrap();
                    if sc["allowPrivilegeEscalation"].as_bool() == Some(false) {
                        assert_ne!(sc["privileged"].as_bool(), Some(true), "{file}: {name}");
                        let added = sc["capabilities"]["add"].as_sequence();
                        assert!(
                            !added
                                .into_iter()
                                .flatten()
                                .any(|a| a == "SYS_ADMIN" || a == "CAP_SYS_ADMIN"),
                            "{file}: {name}: SYS_ADMIN without privilege escalation"
                        );
                    }
                    if sc["runAsNonRoot"].as_bool() == Some(true) {
                        assert_ne!(sc["runAsUser"].as_u64(), Some(0), "{file}: {name}");
                    }
                }
            }
        }
    }
}

/// The host's target triple (`rustc -vV`).
fn host_triple() -> String {
    let out = Command::new("rustc").arg("-vV").output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_string()
}

/// What the build stage copies is a whole workspace: cargo resolves it, offline, against the
/// committed Cargo.lock (--locked, as the Dockerfile builds).
#[test]
fn dockerfile_build_context_is_a_complete_workspace() {
    let stages = stages();
    let context = tempfile::tempdir().unwrap();
    for (_, sources, dest) in copies(&stages[0]) {
        for s in sources {
            let from = repo().join(&s);
            let to = if dest.ends_with('/') && !s.ends_with('/') {
                context.path().join(&dest).join(&s)
            } else {
                context.path().join(&dest)
            };
            copy_tree(&from, &to);
        }
    }
    let out = Command::new(env!("CARGO"))
        // This machine's platform only: dependencies of other targets (wasm's bumpalo) are
        // never downloaded by a build here.
        .args([
            "metadata",
            "--locked",
            "--offline",
            "--format-version",
            "1",
            "--filter-platform",
            &host_triple(),
        ])
        .current_dir(context.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo metadata on the Dockerfile's build context: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let has_bin = meta["packages"].as_array().unwrap().iter().any(|p| {
        p["name"] == "calico-vpp-driver"
            && p["targets"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["name"] == "calico-vpp-driver" && t["kind"][0] == "bin")
    });
    assert!(has_bin, "no calico-vpp-driver binary in the build context");
    // cargo build refuses a workspace whose declared targets are missing, but metadata only
    // leaves them out: every target of the repository's workspace must be in the context.
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--offline",
            "--no-deps",
            "--format-version",
            "1",
        ])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(out.status.success());
    let repo_meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for p in repo_meta["packages"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let src = Path::new(t["src_path"].as_str().unwrap());
            let rel = src.strip_prefix(repo()).unwrap();
            assert!(
                context.path().join(rel).exists(),
                "{}: target {} needs {rel:?}, which the Dockerfile does not copy",
                p["name"],
                t["name"]
            );
        }
    }
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap_or_else(|e| panic!("{from:?}: {e}"));
    }
}
