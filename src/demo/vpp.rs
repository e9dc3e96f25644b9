//! The demo against a real VPP: the pod interfaces a CNI plugin would create (loopbacks,
//! tagged with the pod's interface name so the driver binds them) and the clean-up. It only
//! ever touches interfaces whose tag carries the demo's prefix and ACLs the demo's own
//! reconciler recorded as created. It also asks VPP for its own npol verdicts (`npol match`
//! through `cli_inband`), which only reads VPP's state.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use npol::Verdict;

use vpp_bindings::client::{Client, ClientConfig, ClientError};
use vpp_bindings::compat;
use vpp_bindings::gen::acl::AclDel;
use vpp_bindings::gen::ethernet_types::MacAddress;
use vpp_bindings::gen::interface::{
    CreateLoopback, DeleteLoopback, SwInterfaceDump, SwInterfaceSetFlags, SwInterfaceTagAddDel,
};
use vpp_bindings::gen::interface_types::IfStatusFlags;
use vpp_bindings::gen::vlib::{CliInband, CliInbandReply};
use vpp_bindings::message::Message;

use super::scenario::{Flow, Pod, IFACE_PREFIX};
use crate::dataplane::npol_match::{self, MatchDirection, NpolMatchError};

/// A connection for the demo's own interface management (the driver has its own).
pub struct DemoVpp {
    client: Client,
}

impl DemoVpp {
    pub async fn connect(socket: &Path) -> Result<DemoVpp, ClientError> {
        let client = Client::connect(
            socket,
            ClientConfig {
                name: "calico-vpp-driver-demo".into(),
                request_timeout: Duration::from_secs(5),
                ..ClientConfig::default()
            },
        )
        .await?;
        Ok(DemoVpp { client })
    }

    pub async fn version(&self) -> Result<String, ClientError> {
        let v = self
            .client
            .request(&vpp_bindings::gen::vpe::ShowVersion {})
            .await?;
        Ok(format!("{} {}", v.program, v.version))
    }

    /// The demo's interfaces present in VPP: (tag, sw_if_index).
    pub async fn demo_interfaces(&self) -> Result<Vec<(String, u32)>, ClientError> {
        let all = self.client.dump(&SwInterfaceDump::default()).await?;
        Ok(all
            .into_iter()
            .filter(|d| d.tag.starts_with(IFACE_PREFIX))
            .map(|d| (d.tag, d.sw_if_index))
            .collect())
    }

    /// A loopback tagged with the pod's interface name, admin up; an interface already
    /// carrying that tag (a `--keep` run) is reused. Returns its index.
    pub async fn ensure_pod_interface(&self, pod: &Pod) -> Result<u32, ClientError> {
        let tag = pod.iface();
        if let Some((_, idx)) = self
            .demo_interfaces()
            .await?
            .into_iter()
            .find(|(t, _)| *t == tag)
        {
            return Ok(idx);
        }
        let created = self
            .client
            .request(&CreateLoopback {
                mac_address: MacAddress(pod.mac()),
            })
            .await?;
        let idx = created.sw_if_index;
        self.client
            .request(&SwInterfaceTagAddDel {
                is_add: true,
                sw_if_index: idx,
                tag,
            })
            .await?;
        self.client
            .request(&SwInterfaceSetFlags {
                sw_if_index: idx,
                flags: IfStatusFlags::IF_STATUS_API_FLAG_ADMIN_UP,
            })
            .await?;
        Ok(idx)
    }

    /// Deletes every interface tagged with the demo's prefix; returns how many.
    pub async fn delete_demo_interfaces(&self) -> Result<usize, ClientError> {
        let found = self.demo_interfaces().await?;
        for (_, idx) in &found {
            self.client
                .request(&DeleteLoopback { sw_if_index: *idx })
                .await?;
        }
        Ok(found.len())
    }

    /// Deletes ACLs by index (those the demo's reconciler created).
    pub async fn delete_acls(&self, indices: &[u32]) -> Result<(), ClientError> {
        for i in indices {
            self.client.request(&AclDel { acl_index: *i }).await?;
        }
        Ok(())
    }

    /// Runs one CLI command through the binary API and returns what it printed.
    pub async fn cli(&self, command: &str) -> Result<String, NpolMatchError> {
        let cli_error = |reason: String| NpolMatchError::Cli {
            command: command.to_string(),
            reason,
        };
        let ok = compat::check_table(
            self.client.message_table(),
            &[CliInband::INFO, CliInbandReply::INFO],
            None,
        )
        .is_compatible();
        if !ok {
            return Err(cli_error(format!(
                "this VPP has no {} (or another layout of it)",
                CliInband::NAME_CRC
            )));
        }
        let reply = self
            .client
            .request(&CliInband {
                cmd: command.to_string(),
            })
            .await
            .map_err(|e| cli_error(e.to_string()))?;
        tracing::debug!(command, output = %reply.reply, "cli_inband");
        Ok(reply.reply)
    }

    /// Interfaces with an npol configuration, from `show npol interfaces`.
    pub async fn npol_configured(&self) -> Result<BTreeSet<u32>, NpolMatchError> {
        let text = self.cli("show npol interfaces").await?;
        Ok(npol_match::configured_interfaces(&text))
    }

    /// VPP's own verdict for a new flow, from its npol code: `npol match` inbound on the
    /// source pod's interface (its egress), then, if allowed, outbound on the destination
    /// pod's (its ingress). `interfaces` maps the demo's tags to indices; only interfaces in
    /// `configured` are asked about.
    pub async fn npol_verdict(
        &self,
        interfaces: &BTreeMap<String, u32>,
        configured: &BTreeSet<u32>,
        flow: &Flow,
    ) -> Result<Verdict, NpolMatchError> {
        let pkt = flow.packet();
        let ask = |pod: &Pod, dir| {
            let tag = pod.iface();
            let pkt = &pkt;
            async move {
                let idx = *interfaces
                    .get(&tag)
                    .ok_or_else(|| NpolMatchError::NoInterface(tag.clone()))?;
                if !configured.contains(&idx) {
                    return Err(NpolMatchError::NotConfigured(tag));
                }
                let command = npol_match::command(idx, dir, pkt)?;
                let out = self.cli(&command).await?;
                npol_match::parse(&out).map(|m| m.verdict)
            }
        };
        match ask(&flow.from, MatchDirection::Inbound).await? {
            Verdict::Allow => ask(&flow.to, MatchDirection::Outbound).await,
            Verdict::Deny => Ok(Verdict::Deny),
        }
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}
