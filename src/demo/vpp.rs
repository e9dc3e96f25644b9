//! The demo against a real VPP: the pod interfaces a CNI plugin would create (loopbacks,
//! tagged with the pod's interface name so the driver binds them) and the clean-up. It only
//! ever touches interfaces whose tag carries the demo's prefix and ACLs the demo's own
//! reconciler recorded as created.

use std::path::Path;
use std::time::Duration;

use vpp_bindings::client::{Client, ClientConfig, ClientError};
use vpp_bindings::gen::acl::AclDel;
use vpp_bindings::gen::ethernet_types::MacAddress;
use vpp_bindings::gen::interface::{
    CreateLoopback, DeleteLoopback, SwInterfaceDump, SwInterfaceSetFlags, SwInterfaceTagAddDel,
};
use vpp_bindings::gen::interface_types::IfStatusFlags;

use super::scenario::{Pod, IFACE_PREFIX};

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

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}
