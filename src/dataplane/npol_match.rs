//! VPP's own verdict for a packet on an interface: the `npol match` CLI command (run through
//! the `cli_inband` API message) and the parsing of what it prints, for the demo and for
//! `explain`. It only reads VPP's state. It never guesses: an output it cannot read is an
//! error, shown as "?" and counted as a disagreement.

use std::collections::BTreeSet;
use std::net::IpAddr;

use npol::{Packet, Verdict};

/// Which way the packet crosses the interface, in VPP's words. `inbound` is a packet VPP
/// receives on the interface (RX: the pod's egress), `outbound` one VPP is about to send
/// on it (TX: the pod's ingress). VPP's `npol_match_func` picks the RX or TX policies by
/// this flag (xor the interface's `invert_rx_tx`), as its datapath hooks do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchDirection {
    Inbound,
    Outbound,
}

impl MatchDirection {
    fn word(self) -> &'static str {
        match self {
            MatchDirection::Inbound => "inbound",
            MatchDirection::Outbound => "outbound",
        }
    }
}

/// What `npol match` printed, read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchOutput {
    /// `matched:1`: a policy, profile or default decided; `matched:0`: npol is not enabled
    /// on the interface and lets everything through.
    pub matched: bool,
    pub verdict: Verdict,
}

/// Why VPP's verdict for a flow is unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NpolMatchError {
    #[error("npol match printed nothing")]
    Empty,
    #[error("npol match printed an unexpected line: {0:?}")]
    Unrecognised(String),
    #[error("npol match returned an action that is neither ALLOW nor DENY: {0:?}")]
    UnknownAction(String),
    #[error("npol match cannot express IP protocol {0}")]
    UnsupportedProtocol(u8),
    #[error("interface {0} has no npol configuration in VPP; not asking (VPP's npol match reads past its table for unconfigured interfaces)")]
    NotConfigured(String),
    #[error("no VPP interface is tagged or named {0}")]
    NoInterface(String),
    #[error("cli_inband {command:?}: {reason}")]
    Cli { command: String, reason: String },
}

/// VPP's own verdicts for `asks` — (the endpoint's interface name, direction, packet) —
/// over a connection of its own to the VPP at `socket`. An interface is found as the driver
/// binds it: by tag, then name, then af_packet's `host-<name>`.
pub async fn vpp_verdicts(
    socket: &std::path::Path,
    asks: &[(String, MatchDirection, Packet)],
) -> Result<Vec<Result<Verdict, NpolMatchError>>, NpolMatchError> {
    use vpp_bindings::client::{Client, ClientConfig};
    use vpp_bindings::gen::interface::SwInterfaceDump;
    use vpp_bindings::gen::vlib::CliInband;
    use vpp_bindings::message::Message;
    let fail = |command: &str, e: &dyn std::fmt::Display| NpolMatchError::Cli {
        command: command.to_string(),
        reason: e.to_string(),
    };
    let client = Client::connect(
        socket,
        ClientConfig {
            name: "calico-vpp-driver-explain".into(),
            request_timeout: std::time::Duration::from_secs(3),
            ..ClientConfig::default()
        },
    )
    .await
    .map_err(|e| fail("connect", &e))?;
    // A VPP (or simulator) without the CLI message would leave every request to time out.
    let has_cli = vpp_bindings::compat::check_table(
        client.message_table(),
        &[
            CliInband::INFO,
            vpp_bindings::gen::vlib::CliInbandReply::INFO,
        ],
        None,
    )
    .is_compatible();
    // The built-in simulator lists every message but has no CLI: do not wait on it.
    let simulated = client
        .request(&vpp_bindings::gen::vpe::ShowVersion {})
        .await
        .map(|v| v.version.starts_with("simulator"))
        .map_err(|e| fail("show_version", &e))?;
    if !has_cli || simulated {
        let _ = client.close().await;
        return Err(fail(
            "cli_inband",
            &"this VPP has no CLI (the built-in simulator?): its npol cannot be asked",
        ));
    }
    let interfaces = client
        .dump(&SwInterfaceDump::default())
        .await
        .map_err(|e| fail("sw_interface_dump", &e))?;
    let cli = |command: String| {
        let client = &client;
        async move {
            client
                .request(&CliInband {
                    cmd: command.clone(),
                })
                .await
                .map(|r| r.reply)
                .map_err(|e| fail(&command, &e))
        }
    };
    let configured = configured_interfaces(&cli("show npol interfaces".into()).await?);
    let mut out = Vec::with_capacity(asks.len());
    for (name, dir, pkt) in asks {
        let host = format!("host-{name}");
        let found = interfaces
            .iter()
            .find(|d| d.tag == *name)
            .or_else(|| interfaces.iter().find(|d| d.interface_name == *name))
            .or_else(|| interfaces.iter().find(|d| d.interface_name == host))
            .map(|d| d.sw_if_index);
        let verdict = match found {
            None => Err(NpolMatchError::NoInterface(name.clone())),
            Some(idx) if !configured.contains(&idx) => {
                Err(NpolMatchError::NotConfigured(name.clone()))
            }
            Some(idx) => match command(idx, *dir, pkt) {
                Ok(c) => cli(c).await.and_then(|o| parse(&o).map(|m| m.verdict)),
                Err(e) => Err(e),
            },
        };
        out.push(verdict);
    }
    let _ = client.close().await;
    Ok(out)
}

/// The CLI name of an IP protocol (VPP's `unformat_ip_protocol` takes names, not numbers).
fn protocol_name(proto: u8) -> Option<&'static str> {
    Some(match proto {
        npol::eval::proto::ICMP => "icmp",
        npol::eval::proto::TCP => "tcp",
        npol::eval::proto::UDP => "udp",
        npol::eval::proto::ICMP6 => "icmp6",
        npol::eval::proto::SCTP => "sctp",
        _ => return None,
    })
}

/// The command evaluating `pkt` on interface `sw_if_index`. For ICMP the tuple's ports carry
/// type and code (npol reads the type from the source port slot and the code from the
/// destination's).
pub fn command(
    sw_if_index: u32,
    dir: MatchDirection,
    pkt: &Packet,
) -> Result<String, NpolMatchError> {
    let name = protocol_name(pkt.proto).ok_or(NpolMatchError::UnsupportedProtocol(pkt.proto))?;
    let (sport, dport) = match pkt.proto {
        npol::eval::proto::ICMP | npol::eval::proto::ICMP6 => {
            (u16::from(pkt.icmp_type), u16::from(pkt.icmp_code))
        }
        _ => (pkt.sport, pkt.dport),
    };
    let family = match pkt.src {
        IpAddr::V4(_) => "ip4",
        IpAddr::V6(_) => "ip6",
    };
    Ok(format!(
        "npol match sw_if_index {sw_if_index} {family} {} {};{sport}->{};{dport} {name}",
        dir.word(),
        pkt.src,
        pkt.dst
    ))
}

/// Reads `matched:<n> action:<ALLOW|DENY>` (VPP prints one such line; anything else, such
/// as an error message or `action:unknown type 3`, is an error).
pub fn parse(output: &str) -> Result<MatchOutput, NpolMatchError> {
    let mut lines = output.lines().map(str::trim).filter(|l| !l.is_empty());
    let line = lines.next().ok_or(NpolMatchError::Empty)?;
    if lines.next().is_some() {
        return Err(NpolMatchError::Unrecognised(output.trim().to_string()));
    }
    let unrecognised = || NpolMatchError::Unrecognised(line.to_string());
    let (matched, action) = line.split_once(' ').ok_or_else(unrecognised)?;
    let matched = match matched.strip_prefix("matched:").ok_or_else(unrecognised)? {
        "1" => true,
        "0" => false,
        _ => return Err(unrecognised()),
    };
    let action = action.strip_prefix("action:").ok_or_else(unrecognised)?;
    let verdict = match action {
        "ALLOW" => Verdict::Allow,
        "DENY" => Verdict::Deny,
        other => return Err(NpolMatchError::UnknownAction(other.to_string())),
    };
    Ok(MatchOutput { matched, verdict })
}

/// The interfaces `show npol interfaces` lists (each header line carries
/// `sw_if_index=<n>`): only these are safe to ask `npol match` about.
pub fn configured_interfaces(show_npol_interfaces: &str) -> BTreeSet<u32> {
    show_npol_interfaces
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("sw_if_index="))
        .filter_map(|n| n.trim_end_matches(']').parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from VPP v26.10-rc0~374-gb575ec2c56d with the demo's objects programmed
    // (`demo --keep`): the verdicts and `show npol interfaces` through cli_inband, the error
    // texts from vppctl (through cli_inband they come back as retval -1, text dropped).
    const ALLOWED: &str = "matched:1 action:ALLOW\n";
    const DENIED: &str = "matched:1 action:DENY\n";
    const UNKNOWN_INPUT: &str = "npol match: unknown input 'garbage'\r\n";
    const NO_INTERFACE: &str = "npol match: interface not specified\r\n";
    const SHOW_INTERFACES: &str = "Interfaces with policies configured:\n\
        [loop0 sw_if_index=1 ]\n  rx:\n   rx-policy-default:2 rx-profile-default:1 \n    \
        [policy#91]\n      rx:[rule#103;deny][proto==UDP,dst==4789,]\n\
        [loop2 sw_if_index=1010 ]\n  tx:\n\
        [host-cz2-host sw_if_index=1011  addr=10.88.2.1]\n";

    #[test]
    fn allow_and_deny_lines_parse_to_verdicts() {
        assert_eq!(
            parse(ALLOWED),
            Ok(MatchOutput {
                matched: true,
                verdict: Verdict::Allow
            })
        );
        assert_eq!(parse(DENIED).map(|m| m.verdict), Ok(Verdict::Deny));
    }

    #[test]
    fn unconfigured_interface_allows_with_matched_zero() {
        assert_eq!(
            parse("matched:0 action:ALLOW\n"),
            Ok(MatchOutput {
                matched: false,
                verdict: Verdict::Allow
            })
        );
    }

    #[test]
    fn cli_error_messages_are_errors_not_verdicts() {
        assert!(matches!(
            parse(UNKNOWN_INPUT),
            Err(NpolMatchError::Unrecognised(_))
        ));
        assert!(matches!(
            parse(NO_INTERFACE),
            Err(NpolMatchError::Unrecognised(_))
        ));
        assert_eq!(parse(""), Err(NpolMatchError::Empty));
        assert_eq!(parse("\r\n"), Err(NpolMatchError::Empty));
    }

    #[test]
    fn an_action_other_than_allow_or_deny_is_an_error() {
        assert_eq!(
            parse("matched:1 action:unknown type 0\n"),
            Err(NpolMatchError::UnknownAction("unknown type 0".into()))
        );
    }

    #[test]
    fn extra_lines_or_a_garbled_counter_are_errors() {
        assert!(parse("matched:1 action:ALLOW\nmatched:1 action:DENY\n").is_err());
        assert!(parse("matched:x action:ALLOW").is_err());
        assert!(parse("matched:1action:ALLOW").is_err());
        assert!(parse("action:ALLOW matched:1").is_err());
    }

    #[test]
    fn vppctl_line_endings_parse_too() {
        assert_eq!(
            parse("matched:1 action:DENY\r\n").map(|m| m.verdict),
            Ok(Verdict::Deny)
        );
    }

    #[test]
    fn command_uses_the_index_the_direction_word_and_protocol_names() {
        let src: IpAddr = "10.70.0.10".parse().unwrap();
        let dst: IpAddr = "10.70.0.11".parse().unwrap();
        let tcp = Packet::l4(6, src, 40002, dst, 8080);
        assert_eq!(
            command(2, MatchDirection::Outbound, &tcp).unwrap(),
            "npol match sw_if_index 2 ip4 outbound 10.70.0.10;40002->10.70.0.11;8080 tcp"
        );
        let udp = Packet::l4(17, src, 1, dst, 53);
        assert!(command(1, MatchDirection::Inbound, &udp)
            .unwrap()
            .contains(" inbound 10.70.0.10;1->10.70.0.11;53 udp"));
        assert_eq!(
            command(1, MatchDirection::Inbound, &Packet::l4(47, src, 0, dst, 0)),
            Err(NpolMatchError::UnsupportedProtocol(47))
        );
    }

    #[test]
    fn icmp_type_and_code_travel_in_the_port_slots() {
        let src: IpAddr = "10.70.1.10".parse().unwrap();
        let dst: IpAddr = "10.70.0.10".parse().unwrap();
        let echo = Packet::icmp(src, dst, 8, 0, 0x4242);
        assert_eq!(
            command(7, MatchDirection::Outbound, &echo).unwrap(),
            "npol match sw_if_index 7 ip4 outbound 10.70.1.10;8->10.70.0.10;0 icmp"
        );
        let v6 = Packet::icmp(
            "fd00::1".parse().unwrap(),
            "fd00::2".parse().unwrap(),
            128,
            0,
            1,
        );
        assert_eq!(
            command(7, MatchDirection::Inbound, &v6).unwrap(),
            "npol match sw_if_index 7 ip6 inbound fd00::1;128->fd00::2;0 icmp6"
        );
    }

    #[test]
    fn configured_interfaces_are_read_from_show_npol_interfaces() {
        assert_eq!(
            configured_interfaces(SHOW_INTERFACES),
            BTreeSet::from([1, 1010, 1011])
        );
        assert!(configured_interfaces("Interfaces with policies configured:\n").is_empty());
    }
}
