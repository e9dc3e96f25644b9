//! The few Felix configuration values that change how policy compiles, read from the model's
//! raw `ConfigUpdate` strings. Unparseable values fall back to Felix's defaults, logged.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `DefaultEndpointToHostAction`: what happens to workload→host traffic after the workload's
/// egress policy allowed it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
pub enum EndpointToHostAction {
    /// Felix's default.
    #[default]
    Drop,
    Accept,
    /// Go on to the host endpoints' ingress policy. Host endpoint policy is not compiled yet,
    /// so this behaves as `Accept` (reported).
    Return,
}

/// Policy-relevant Felix settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PolicyConfig {
    pub endpoint_to_host: EndpointToHostAction,
    /// `AllowVXLANPacketsFromWorkloads` (default false: VXLAN from pods is dropped).
    pub allow_vxlan_from_workloads: bool,
    /// `AllowIPIPPacketsFromWorkloads` (default false: IPIP from pods is dropped).
    pub allow_ipip_from_workloads: bool,
    /// `VXLANPort` (default 4789).
    pub vxlan_port: u16,
    /// Driver setting `VPPGuardAllowICMPErrors`: whether the protocol guard lets ICMP errors
    /// through (see `crate::guard`). Always true: `false` is refused, because an error the
    /// guard drops has already given cnat a session that skips the TX policy.
    pub guard_icmp_errors: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            endpoint_to_host: EndpointToHostAction::Drop,
            allow_vxlan_from_workloads: false,
            allow_ipip_from_workloads: false,
            vxlan_port: 4789,
            guard_icmp_errors: true,
        }
    }
}

impl PolicyConfig {
    pub fn guard(&self) -> crate::guard::GuardOptions {
        crate::guard::GuardOptions {
            icmp_errors: self.guard_icmp_errors,
        }
    }

    pub fn from_felix(raw: &BTreeMap<String, String>) -> PolicyConfig {
        let mut c = PolicyConfig::default();
        if let Some(v) = raw.get("DefaultEndpointToHostAction") {
            c.endpoint_to_host = match v.trim().to_ascii_uppercase().as_str() {
                "DROP" => EndpointToHostAction::Drop,
                "ACCEPT" => EndpointToHostAction::Accept,
                "RETURN" => EndpointToHostAction::Return,
                other => {
                    tracing::warn!(
                        value = other,
                        "DefaultEndpointToHostAction not understood; using DROP"
                    );
                    EndpointToHostAction::Drop
                }
            };
        }
        if let Some(b) = raw
            .get("AllowVXLANPacketsFromWorkloads")
            .and_then(|v| parse_bool(v))
        {
            c.allow_vxlan_from_workloads = b;
        }
        if let Some(b) = raw
            .get("AllowIPIPPacketsFromWorkloads")
            .and_then(|v| parse_bool(v))
        {
            c.allow_ipip_from_workloads = b;
        }
        if raw
            .get("VPPGuardAllowICMPErrors")
            .and_then(|v| parse_bool(v))
            == Some(false)
        {
            tracing::warn!(
                "VPPGuardAllowICMPErrors=false refused: an ICMP error dropped after cnat's \
                 lookup leaves a session for the flow it quotes that skips the TX policy"
            );
        }
        if let Some(v) = raw.get("VXLANPort") {
            match v.trim().parse::<u16>() {
                Ok(p) if p != 0 => c.vxlan_port = p,
                _ => tracing::warn!(value = %v, "VXLANPort not understood; using 4789"),
            }
        }
        c
    }
}

/// Felix's boolean parser accepts these spellings.
fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "y" | "t" => Some(true),
        "false" | "0" | "no" | "n" | "f" => Some(false),
        other => {
            tracing::warn!(
                value = other,
                "boolean Felix setting not understood; using default"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_felix() {
        let c = PolicyConfig::from_felix(&BTreeMap::new());
        assert_eq!(c.endpoint_to_host, EndpointToHostAction::Drop);
        assert!(!c.allow_vxlan_from_workloads && !c.allow_ipip_from_workloads);
        assert_eq!(c.vxlan_port, 4789);
        assert!(c.guard_icmp_errors);
    }

    #[test]
    fn turning_guard_icmp_errors_off_is_refused() {
        let raw: BTreeMap<String, String> =
            [("VPPGuardAllowICMPErrors".to_string(), "false".to_string())].into();
        assert!(PolicyConfig::from_felix(&raw).guard_icmp_errors);
    }

    #[test]
    fn raw_strings_are_parsed_case_insensitively() {
        let raw: BTreeMap<String, String> = [
            ("DefaultEndpointToHostAction", "accept"),
            ("AllowVXLANPacketsFromWorkloads", "true"),
            ("VXLANPort", "8472"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let c = PolicyConfig::from_felix(&raw);
        assert_eq!(c.endpoint_to_host, EndpointToHostAction::Accept);
        assert!(c.allow_vxlan_from_workloads);
        assert_eq!(c.vxlan_port, 8472);
    }
}
