//! The cluster configuration in `calico-config/` parses, selects this driver, and every
//! `CALICO_VPP_*` variable it sets is one the driver knows, with a value the driver accepts.

use std::collections::BTreeMap;
use std::path::PathBuf;

use calico_vpp_driver::cli::Cli;
use calico_vpp_driver::config::DriverConfig;
use serde_yaml::Value;

fn load(name: &str) -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../calico-config")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    text.split("\n---\n")
        .map(|doc| serde_yaml::from_str(doc).unwrap_or_else(|e| panic!("{name}: {e}")))
        .collect()
}

/// `env` of the named container as a map (a `fieldRef` value as its field path).
fn container_env(ds: &Value, container: &str) -> BTreeMap<String, String> {
    let containers = ds["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .expect("containers");
    let c = containers
        .iter()
        .find(|c| c["name"].as_str() == Some(container))
        .unwrap_or_else(|| panic!("no container {container}"));
    c["env"]
        .as_sequence()
        .expect("env")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                // A value from the pod's own fields (the node name) stands in as its path.
                e["value"]
                    .as_str()
                    .or_else(|| e["valueFrom"]["fieldRef"]["fieldPath"].as_str())
                    .expect("a string value or a fieldRef")
                    .to_string(),
            )
        })
        .collect()
}

/// Checks each CALICO_VPP_* variable against the CLI: known name, accepted value.
fn check_driver_env(env: &BTreeMap<String, String>) {
    let known: BTreeMap<String, Option<String>> = Cli::env_vars().into_iter().collect();
    let mut args = vec!["calico-vpp-driver".to_string()];
    for (name, value) in env.iter().filter(|(k, _)| k.starts_with("CALICO_VPP_")) {
        let long = known
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not a setting of the driver"));
        if let Some(long) = long {
            args.push(format!("--{long}"));
            args.push(value.clone());
        }
    }
    let cli = Cli::try_parse_args(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    DriverConfig::from_settings(&cli.settings).unwrap_or_else(|e| panic!("{args:?}: {e}"));
}

#[test]
fn felix_configuration_selects_the_external_driver() {
    let docs = load("felix-configuration.yaml");
    assert_eq!(docs.len(), 1);
    let fc = &docs[0];
    assert_eq!(fc["kind"].as_str(), Some("FelixConfiguration"));
    assert_eq!(fc["apiVersion"].as_str(), Some("projectcalico.org/v3"));
    assert_eq!(
        fc["spec"]["useInternalDataplaneDriver"].as_bool(),
        Some(false)
    );
    assert!(fc["spec"]["dataplaneDriver"]
        .as_str()
        .unwrap()
        .ends_with("/calico-vpp-driver"));
    // Routes to other nodes' blocks for every kind of pool (DESIGN section 9).
    assert_eq!(fc["spec"]["programClusterRoutes"].as_str(), Some("Enabled"));
    let action = fc["spec"]["defaultEndpointToHostAction"].as_str().unwrap();
    assert!(["Drop", "Accept", "Return"].contains(&action));
    for list in ["failsafeInboundHostPorts", "failsafeOutboundHostPorts"] {
        for p in fc["spec"][list].as_sequence().unwrap() {
            assert!(["TCP", "UDP"].contains(&p["protocol"].as_str().unwrap()));
            assert!(p["port"].as_u64().unwrap() <= 65535);
        }
    }
}

#[test]
fn calico_node_environment_runs_the_driver_on_fds() {
    let docs = load("calico-node-env.yaml");
    let env = container_env(&docs[0], "calico-node");
    assert_eq!(env["FELIX_USEINTERNALDATAPLANEDRIVER"], "false");
    assert!(env["FELIX_DATAPLANEDRIVER"].ends_with("/calico-vpp-driver"));
    check_driver_env(&env);
}

#[test]
fn socket_mode_pairs_the_proxy_with_the_driver_container() {
    let docs = load("calico-vpp-driver-socket.yaml");
    assert_eq!(docs.len(), 1);
    let node = container_env(&docs[0], "calico-node");
    assert_eq!(node["FELIX_USEINTERNALDATAPLANEDRIVER"], "false");
    assert!(node["FELIX_DATAPLANEDRIVER"].ends_with("/calico-vpp-felix-proxy"));
    check_driver_env(&node);
    let vpp_node = load("calico-vpp-node.yaml");
    assert_eq!(vpp_node.len(), 1);
    let driver = container_env(&vpp_node[0], "calico-vpp-driver");
    check_driver_env(&driver);
    assert_eq!(
        node["CALICO_VPP_FELIX_SOCKET"], driver["CALICO_VPP_FELIX_SOCKET"],
        "proxy and driver must meet on the same socket"
    );
    let container = vpp_node[0]["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|c| c["name"].as_str() == Some("calico-vpp-driver"))
        .unwrap();
    let args = container["args"].as_sequence().unwrap();
    assert_eq!(args[0].as_str(), Some("run"));
}
