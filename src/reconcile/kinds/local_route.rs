//! Routes to this node's workloads: each workload address out of its endpoint's interface
//! (attached: via the address itself on an Ethernet interface, whose static neighbour the
//! binding made; straight out of a point-to-point one). A route waits until its interface
//! is bound with its policy live (cnat on), so no traffic is steered to a pod before its
//! policy holds; it follows the interface when it is re-created. A route whose interface VPP
//! deleted stays in VPP's FIB (dead) until the driver deletes it, so its record is kept
//! until then. Only addresses in the realized record are ever deleted.

use serde::{Deserialize, Serialize};

use calico_compile::{DesiredLocalRoute, RouteKey};

use super::{Ctx, Kind, Stage};
use crate::dataplane::{Op, OpError, OpReply, RoutePath, SwIfIndex, RETVAL_INVALID_SW_IF_INDEX};

pub struct LocalRoutes;

/// A route VPP holds for us to a local workload: the path VPP was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealLocalRoute {
    pub sw_if_index: SwIfIndex,
    pub path: RoutePath,
}

impl Kind for LocalRoutes {
    const NAME: &'static str = "local route";
    const STAGE: Stage = Stage::AfterInterfaces;
    type Key = RouteKey;
    type Want = DesiredLocalRoute;
    type Real = RealLocalRoute;

    fn plan(
        ctx: &Ctx<'_>,
        key: &RouteKey,
        want: &DesiredLocalRoute,
        have: Option<&RealLocalRoute>,
    ) -> Result<Option<Op>, String> {
        let bound = ctx
            .realized
            .interfaces
            .get(&want.interface)
            .filter(|i| i.cnat)
            .ok_or_else(|| format!("waiting for interface {} to be bound", want.interface))?;
        let sw_if_index = bound.sw_if_index;
        let p2p = ctx
            .interfaces
            .get(&sw_if_index)
            .is_some_and(|i| i.point_to_point);
        let path = if p2p {
            RoutePath::Interface(sw_if_index)
        } else {
            RoutePath::ViaOn(key.0.addr(), sw_if_index)
        };
        if have.is_some_and(|h| h.path == path) {
            return Ok(None);
        }
        Ok(Some(Op::Route {
            dst: key.0,
            via: path,
            is_add: true,
        }))
    }

    fn applied(
        _: &DesiredLocalRoute,
        _: Option<&RealLocalRoute>,
        op: Op,
        _: OpReply,
    ) -> Result<RealLocalRoute, String> {
        match op {
            Op::Route {
                via: via @ (RoutePath::Interface(sw) | RoutePath::ViaOn(_, sw)),
                is_add: true,
                ..
            } => Ok(RealLocalRoute {
                sw_if_index: sw,
                path: via,
            }),
            op => Err(format!("unexpected {} for a local route", op.name())),
        }
    }

    fn lost(error: &OpError) -> bool {
        error.retval == RETVAL_INVALID_SW_IF_INDEX
    }

    fn delete(key: &RouteKey, real: &RealLocalRoute) -> Op {
        Op::Route {
            dst: key.0,
            via: real.path,
            is_add: false,
        }
    }
}
