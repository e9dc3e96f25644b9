//! Pod interfaces: interfaces the driver creates and owns for the CNI plugin's pods.
//!
//! [`Pods`] (before endpoints are bound) builds VPP's side of the pod link, one write per
//! round: the interface (`af_packet_create_v3` on the veth's host end, or `tap_create_v3`
//! in TUN mode inside the pod's namespace), the tag that binds Felix's endpoint to it (a
//! tap gets it at creation), **dark** (the pod-dark ACL drops everything in both
//! directions), interrupt mode (VPP does not spin polling it), up, and unnumbered to the
//! uplink (IP-enabled without an address of its own; the only step that may wait). A pod whose endpoint Felix has not sent gets
//! nothing through, as Felix's Linux dataplane drops traffic of `cali` interfaces it does
//! not know; binding the endpoint replaces the dark ACL with the endpoint's guard, its
//! policy and cnat, in the same pass.
//!
//! Up from the start, not down until bound: VPP never reads the receive ring of a down
//! af_packet interface, so its socket stays readable, and with a dozen such pods VPP's main
//! loop stopped serving its API socket altogether (seen on a real VPP, every client hung).
//!
//! [`PodLinks`] writes nothing: it waits (and says so) until the endpoint is bound.
//!
//! An af_packet interface on the pod's host link that VPP already has while the record has
//! none (the driver stopped between the create and its state file) is adopted by tagging it:
//! the host link is this pod's, made by this driver. Only recorded pods are deleted.

use serde::{Deserialize, Serialize};

use calico_compile::{AclKey, DesiredPod, DesiredPodLink, InterfaceKey, PodLink};

use super::{Ctx, Kind, Stage};
use crate::dataplane::{
    Op, OpError, OpReply, SwIfIndex, RETVAL_INVALID_SW_IF_INDEX, RETVAL_NO_SUCH_ENTRY,
    RETVAL_SYSCALL_ERROR_1,
};

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
    /// Past the dark step: the pod-dark ACL was attached (until the endpoint's binding
    /// replaced it), or the interface was bound already.
    #[serde(default)]
    pub dark: bool,
    #[serde(default)]
    pub rx_interrupt: bool,
    #[serde(default)]
    pub up: bool,
}

impl RealPod {
    fn new(sw_if_index: SwIfIndex, tun: bool, tagged: bool) -> RealPod {
        RealPod {
            sw_if_index,
            tun,
            tagged,
            unnumbered: None,
            dark: false,
            rx_interrupt: false,
            up: false,
        }
    }

    /// Built as far as this kind goes: the endpoint can bind to it.
    pub fn ready(&self) -> bool {
        self.tagged && self.unnumbered.is_some() && self.dark && self.rx_interrupt && self.up
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
        // Dark before anything can wait (the uplink may be missing): the endpoint's binding,
        // later in this pass, replaces the dark ACL with its guard and must not find it
        // coming back afterwards. An interface bound already (a retried step) stays as bound.
        let bound = ctx
            .realized
            .interfaces
            .get(key)
            .is_some_and(|i| i.sw_if_index == sw_if_index);
        if !have.dark && !bound {
            let dark = ctx
                .dependency::<super::acl::Acls>(&AclKey(calico_compile::guard::POD_DARK.into()))?
                .id;
            return Ok(Some(Op::AclInterfaceSet {
                sw_if_index,
                input: vec![dark],
                output: vec![dark],
            }));
        }
        if !have.rx_interrupt {
            return Ok(Some(Op::SetRxInterrupt { sw_if_index }));
        }
        if !have.up {
            return Ok(Some(Op::SetAdminUp {
                sw_if_index,
                up: true,
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
            // A tap is tagged by its creation.
            (Op::AfPacketCreate { .. } | Op::TunCreate { .. }, _, OpReply::Created(i)) => {
                Ok(RealPod::new(SwIfIndex(i), tun, tun))
            }
            (Op::SetTag { sw_if_index, .. }, None, _) => Ok(RealPod::new(sw_if_index, tun, true)),
            (Op::SetTag { .. }, Some(h), _) => Ok(RealPod { tagged: true, ..*h }),
            (Op::AclInterfaceSet { .. }, Some(h), _) => Ok(RealPod { dark: true, ..*h }),
            // Past the dark step (taken, or skipped for a bound interface).
            (Op::SetRxInterrupt { .. }, Some(h), _) => Ok(RealPod {
                rx_interrupt: true,
                dark: true,
                ..*h
            }),
            (Op::SetAdminUp { up, .. }, Some(h), _) => Ok(RealPod { up, ..*h }),
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

    /// `af_packet_delete` names no interface but the host's: for one VPP does not have it
    /// answers `SYSCALL_ERROR_1` (`af_packet_delete_if`); `tap_delete_v2` of an index VPP
    /// does not have answers `INVALID_SW_IF_INDEX`.
    fn already_gone(error: &OpError) -> bool {
        match error.op {
            "af_packet_delete" => error.retval == RETVAL_SYSCALL_ERROR_1,
            "tap_delete_v2" => error.retval == RETVAL_INVALID_SW_IF_INDEX,
            _ => error.retval == RETVAL_NO_SUCH_ENTRY,
        }
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

/// Never recorded: a pod link writes nothing (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealPodLink {
    pub sw_if_index: SwIfIndex,
}

impl Kind for PodLinks {
    const NAME: &'static str = "pod link";
    const STAGE: Stage = Stage::AfterInterfaces;
    type Key = InterfaceKey;
    type Want = DesiredPodLink;
    type Real = RealPodLink;

    /// Settled once Felix's endpoint is bound to the pod's interface with its policy live;
    /// until then it waits, which names the pod in the reconciler's summary.
    fn plan(
        ctx: &Ctx<'_>,
        key: &InterfaceKey,
        want: &DesiredPodLink,
        _have: Option<&RealPodLink>,
    ) -> Result<Option<Op>, String> {
        let pod = ctx.dependency::<Pods>(key)?;
        if !pod.ready() {
            return Err(format!("waiting for pod interface {key}"));
        }
        ctx.realized
            .interfaces
            .get(&want.interface)
            .filter(|i| i.cnat && i.config.is_some() && i.sw_if_index == pod.sw_if_index)
            .map(|_| None)
            .ok_or_else(|| {
                format!(
                    "dark until Felix's endpoint for {} is bound with its policy",
                    want.interface
                )
            })
    }

    fn applied(
        _: &DesiredPodLink,
        _: Option<&RealPodLink>,
        op: Op,
        _: OpReply,
    ) -> Result<RealPodLink, String> {
        Err(format!("a pod link writes nothing, not {}", op.name()))
    }

    fn delete(_key: &InterfaceKey, real: &RealPodLink) -> Op {
        // Never recorded, so never deleted; the interface itself goes with its pod.
        Op::SetAdminUp {
            sw_if_index: real.sw_if_index,
            up: false,
        }
    }
}
