//! Pod interfaces: interfaces the driver creates and owns for the CNI plugin's pods, in two
//! kinds so that each step has its place in a pass.
//!
//! [`Pods`] (before endpoints are bound) builds VPP's side of the pod link, one write per
//! round: the interface (`af_packet_create_v3` on the veth's host end, or `tap_create_v3`
//! in TUN mode inside the pod's namespace), the tag that binds Felix's endpoint to it (a
//! tap gets it at creation), and unnumbered to the uplink (IP-enabled without an address of
//! its own). It stays **down**.
//!
//! [`PodLinks`] (after endpoints are bound) sets it up once the endpoint's policy holds on
//! it (bound, with cnat on): a pod whose endpoint Felix has not sent gets nothing through,
//! as Felix's Linux dataplane drops traffic of `cali` interfaces it does not know. Then, and
//! only then, interrupt mode (VPP does not spin polling it). Not before: VPP does not read
//! the receive ring of a down interface in interrupt mode, its socket stays readable, and
//! VPP's main loop takes at most 16 ready files per poll — with more than a dozen such pods
//! the API socket was never served again (VPP hung for every client; seen on a real VPP).
//! Polled, a down interface's frames are read and dropped.
//!
//! An af_packet interface on the pod's host link that VPP already has while the record has
//! none (the driver stopped between the create and its state file) is adopted by tagging it:
//! the host link is this pod's, made by this driver. Only recorded pods are deleted.

use serde::{Deserialize, Serialize};

use calico_compile::{DesiredPod, DesiredPodLink, InterfaceKey, PodLink};

use super::{Ctx, Kind, Stage};
use crate::dataplane::{Op, OpError, OpReply, SwIfIndex, RETVAL_INVALID_SW_IF_INDEX};

pub struct Pods;

/// A pod interface VPP holds for us, and how far its setup got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealPod {
    pub sw_if_index: SwIfIndex,
    /// A TUN tap (deleted by index) rather than an af_packet interface (deleted by name).
    pub tun: bool,
    pub tagged: bool,
    /// The interface whose addresses it borrows, once set.
    pub unnumbered: Option<SwIfIndex>,
}

impl RealPod {
    /// Built as far as this kind goes: the endpoint can bind to it.
    pub fn ready(&self) -> bool {
        self.tagged && self.unnumbered.is_some()
    }
}

impl Kind for Pods {
    const NAME: &'static str = "pod interface";
    const STAGE: Stage = Stage::BeforeInterfaces;
    const MULTI_STEP: bool = true;
    type Key = InterfaceKey;
    type Want = DesiredPod;
    type Real = RealPod;

    fn plan(
        ctx: &Ctx<'_>,
        key: &InterfaceKey,
        want: &DesiredPod,
        have: Option<&RealPod>,
    ) -> Result<Option<Op>, String> {
        let Some(have) = have else {
            return Ok(Some(match &want.kind {
                PodLink::AfPacket { host_ifname, mac } => {
                    let vpp_name = format!("host-{host_ifname}");
                    match ctx.interfaces.values().find(|i| i.name == vpp_name) {
                        // Ours from before the record was written: adopt it.
                        Some(found) => Op::SetTag {
                            sw_if_index: found.sw_if_index,
                            tag: want.tag.clone(),
                        },
                        None => Op::AfPacketCreate {
                            host_if_name: host_ifname.clone(),
                            mac: *mac,
                        },
                    }
                }
                PodLink::Tun {
                    netns,
                    ifname,
                    mtu,
                    ip4,
                    ip6,
                } => Op::TunCreate {
                    tag: want.tag.clone(),
                    netns: netns.clone(),
                    host_if_name: ifname.clone(),
                    mtu: *mtu,
                    ip4: *ip4,
                    ip6: *ip6,
                },
            }));
        };
        let sw_if_index = have.sw_if_index;
        if !have.tagged {
            return Ok(Some(Op::SetTag {
                sw_if_index,
                tag: key.0.clone(),
            }));
        }
        let uplink = ctx.uplink()?;
        if have.unnumbered != Some(uplink) {
            return Ok(Some(Op::SetUnnumbered {
                sw_if_index,
                to: uplink,
                is_add: true,
            }));
        }
        Ok(None)
    }

    fn applied(
        want: &DesiredPod,
        have: Option<&RealPod>,
        op: Op,
        reply: OpReply,
    ) -> Result<RealPod, String> {
        let tun = matches!(want.kind, PodLink::Tun { .. });
        match (op, have, reply) {
            (Op::AfPacketCreate { .. } | Op::TunCreate { .. }, _, OpReply::Created(i)) => {
                Ok(RealPod {
                    sw_if_index: SwIfIndex(i),
                    tun,
                    // A tap is tagged by its creation.
                    tagged: tun,
                    unnumbered: None,
                })
            }
            (Op::SetTag { sw_if_index, .. }, None, _) => Ok(RealPod {
                sw_if_index,
                tun,
                tagged: true,
                unnumbered: None,
            }),
            (Op::SetTag { .. }, Some(h), _) => Ok(RealPod { tagged: true, ..*h }),
            (Op::SetUnnumbered { to, .. }, Some(h), _) => Ok(RealPod {
                unnumbered: Some(to),
                ..*h
            }),
            (op, _, reply) => Err(format!("unexpected reply {reply:?} to {}", op.name())),
        }
    }

    /// VPP no longer has the interface: build it again.
    fn lost(error: &OpError) -> bool {
        error.retval == RETVAL_INVALID_SW_IF_INDEX
            && error.op != "af_packet_create_v3"
            && error.op != "tap_create_v3"
    }

    fn interface(real: &RealPod) -> Option<SwIfIndex> {
        Some(real.sw_if_index)
    }

    fn delete(key: &InterfaceKey, real: &RealPod) -> Op {
        if real.tun {
            Op::TapDelete {
                sw_if_index: real.sw_if_index,
            }
        } else {
            Op::AfPacketDelete {
                host_if_name: key.0.clone(),
            }
        }
    }

    /// A rebuilt (or held back) pod interface: its link is looked at again.
    fn dependants(
        _desired: &calico_compile::DesiredState,
        hit: &std::collections::BTreeSet<InterfaceKey>,
        work: &mut crate::reconcile::Changed,
    ) {
        work.kinds.pod_links.extend(hit.iter().cloned());
    }
}

pub struct PodLinks;

/// A pod link VPP holds up for us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealPodLink {
    pub sw_if_index: SwIfIndex,
    /// In interrupt mode.
    pub rx_interrupt: bool,
}

impl Kind for PodLinks {
    const NAME: &'static str = "pod link";
    const STAGE: Stage = Stage::AfterInterfaces;
    const MULTI_STEP: bool = true;
    type Key = InterfaceKey;
    type Want = DesiredPodLink;
    type Real = RealPodLink;

    fn plan(
        ctx: &Ctx<'_>,
        key: &InterfaceKey,
        want: &DesiredPodLink,
        have: Option<&RealPodLink>,
    ) -> Result<Option<Op>, String> {
        let pod = ctx.dependency::<Pods>(key)?;
        if !pod.ready() {
            return Err(format!("waiting for pod interface {key}"));
        }
        ctx.realized
            .interfaces
            .get(&want.interface)
            .filter(|i| i.cnat && i.config.is_some() && i.sw_if_index == pod.sw_if_index)
            .ok_or_else(|| {
                format!(
                    "down until Felix's endpoint for {} is bound with its policy",
                    want.interface
                )
            })?;
        let sw_if_index = pod.sw_if_index;
        match have.filter(|h| h.sw_if_index == sw_if_index) {
            None => Ok(Some(Op::SetAdminUp {
                sw_if_index,
                up: true,
            })),
            Some(h) if !h.rx_interrupt => Ok(Some(Op::SetRxInterrupt { sw_if_index })),
            Some(_) => Ok(None),
        }
    }

    fn applied(
        _: &DesiredPodLink,
        have: Option<&RealPodLink>,
        op: Op,
        _: OpReply,
    ) -> Result<RealPodLink, String> {
        match (op, have) {
            (
                Op::SetAdminUp {
                    sw_if_index,
                    up: true,
                },
                _,
            ) => Ok(RealPodLink {
                sw_if_index,
                rx_interrupt: false,
            }),
            (Op::SetRxInterrupt { .. }, Some(h)) => Ok(RealPodLink {
                rx_interrupt: true,
                ..*h
            }),
            (op, _) => Err(format!("unexpected {} for a pod link", op.name())),
        }
    }

    fn lost(error: &OpError) -> bool {
        error.retval == RETVAL_INVALID_SW_IF_INDEX
    }

    fn interface(real: &RealPodLink) -> Option<SwIfIndex> {
        Some(real.sw_if_index)
    }

    /// Down before the interface goes (or when the pod stays and its link is no longer
    /// wanted up).
    fn delete(_key: &InterfaceKey, real: &RealPodLink) -> Op {
        Op::SetAdminUp {
            sw_if_index: real.sw_if_index,
            up: false,
        }
    }
}
