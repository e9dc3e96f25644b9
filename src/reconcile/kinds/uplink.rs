//! The uplink, prepared for what enters the node by it. npol judges a flow towards a pod
//! (the pod's ingress policy, VPP TX) only if cnat's feature is on the interface the flow
//! entered VPP by as well (DESIGN.md section 9): for traffic from other nodes without
//! encapsulation, and from outside the cluster, that is the uplink. Tunnels get cnat as
//! part of their own build ([`super::tunnel`]).
//!
//! The uplink is the operator's interface, not the driver's: the driver only turns the
//! feature on and records that it did, so a restart makes no write. Without an uplink
//! setting there is nothing to do; with one that VPP lacks, the object waits.

use serde::{Deserialize, Serialize};

use calico_compile::{DesiredUplink, UplinkKey};

use super::{Ctx, Kind, Stage};
use crate::dataplane::{Op, OpError, OpReply, SwIfIndex, RETVAL_INVALID_SW_IF_INDEX};

pub struct Uplinks;

/// The interface cnat was turned on for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealUplink {
    pub sw_if_index: SwIfIndex,
}

impl Kind for Uplinks {
    const NAME: &'static str = "uplink";
    const STAGE: Stage = Stage::AfterInterfaces;
    type Key = UplinkKey;
    type Want = DesiredUplink;
    type Real = RealUplink;

    fn plan(
        ctx: &Ctx<'_>,
        _: &UplinkKey,
        _: &DesiredUplink,
        have: Option<&RealUplink>,
    ) -> Result<Option<Op>, String> {
        if ctx.uplink.is_none() {
            return Ok(None);
        }
        let uplink = ctx.uplink()?;
        if have.is_some_and(|h| h.sw_if_index == uplink) {
            return Ok(None);
        }
        Ok(Some(Op::CnatFeature {
            sw_if_index: uplink,
            enable: true,
        }))
    }

    fn applied(
        _: &DesiredUplink,
        _: Option<&RealUplink>,
        op: Op,
        reply: OpReply,
    ) -> Result<RealUplink, String> {
        match op {
            Op::CnatFeature {
                sw_if_index,
                enable: true,
            } => Ok(RealUplink { sw_if_index }),
            op => Err(format!("unexpected reply {reply:?} to {}", op.name())),
        }
    }

    /// The uplink went away: turn the feature on again when it is back.
    fn lost(error: &OpError) -> bool {
        error.retval == RETVAL_INVALID_SW_IF_INDEX
    }

    fn interface(real: &RealUplink) -> Option<SwIfIndex> {
        Some(real.sw_if_index)
    }

    fn delete(_: &UplinkKey, real: &RealUplink) -> Op {
        Op::CnatFeature {
            sw_if_index: real.sw_if_index,
            enable: false,
        }
    }
}
