//! ClusterIPs none of whose service's ports has a backend, routed to an ICMP unreachable
//! (`ip_route_add_del` with an `ICMP_UNREACH` path): a new connection to them is refused at
//! once, as kube-proxy refuses it, rather than leaving by the default route or timing out.
//! When a port gets a backend again, cnat's translation takes the address over (its FIB
//! entry is exclusive) whether or not this route has gone yet. Like the translations,
//! nothing is deleted before the Kubernetes watch has both its lists.

use calico_compile::services::DesiredReject;
use calico_compile::RouteKey;
use serde::{Deserialize, Serialize};

use super::{Ctx, Kind, Stage};
use crate::dataplane::{Op, OpReply, RoutePath};

pub struct ServiceRejects;

/// A reject route VPP holds for us.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealReject {
    /// `namespace/name` of the service it was added for.
    pub service: String,
}

impl Kind for ServiceRejects {
    const NAME: &'static str = "service reject";
    const STAGE: Stage = Stage::AfterInterfaces;
    type Key = RouteKey;
    type Want = DesiredReject;
    type Real = RealReject;

    fn plan(
        _ctx: &Ctx<'_>,
        key: &RouteKey,
        _want: &DesiredReject,
        have: Option<&RealReject>,
    ) -> Result<Option<Op>, String> {
        // The route is the same whichever service asked for it.
        if have.is_some() {
            return Ok(None);
        }
        Ok(Some(Op::Route {
            dst: key.0,
            via: RoutePath::Unreachable,
            is_add: true,
        }))
    }

    fn applied(
        want: &DesiredReject,
        _have: Option<&RealReject>,
        op: Op,
        reply: OpReply,
    ) -> Result<RealReject, String> {
        match (op, reply) {
            (
                Op::Route {
                    via: RoutePath::Unreachable,
                    is_add: true,
                    ..
                },
                OpReply::Done,
            ) => Ok(RealReject {
                service: want.service.clone(),
            }),
            (op, reply) => Err(format!("unexpected reply {reply:?} to {}", op.name())),
        }
    }

    fn delete(key: &RouteKey, _real: &RealReject) -> Op {
        Op::Route {
            dst: key.0,
            via: RoutePath::Unreachable,
            is_add: false,
        }
    }

    /// Before the watch has both lists, nothing is known to be gone.
    fn retain_unused(
        _realized: &crate::reconcile::realized::Realized,
        desired: &calico_compile::DesiredState,
        stale: &mut Vec<(RouteKey, RealReject)>,
    ) {
        if !desired.services_synced {
            stale.clear();
        }
    }
}
