//! Routes to other nodes' workloads (`ip_route_add_del` in the default table). An add
//! replaces the route's paths, so a changed next hop is one write. Only destinations in
//! the realized record are ever deleted: VPP's other routes (interface prefixes, routes
//! someone else added) are never touched, and a prefix is only ours once VPP acknowledged
//! our add of it. A route into a tunnel waits for the tunnel (see [`super::tunnel`]) and
//! follows it when it is rebuilt with a new interface index.

use calico_compile::{DesiredRoute, NextHop, RouteKey};
use serde::{Deserialize, Serialize};

use super::{tunnel::Tunnels, Ctx, Kind, Stage};
use crate::dataplane::{Op, OpReply, RoutePath};

pub struct Routes;

/// A route VPP holds for us: what it was asked for and the path VPP was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealRoute {
    pub next_hop: NextHop,
    /// The interface of a tunnel next hop (absent for a next-hop address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<RoutePath>,
}

fn path(ctx: &Ctx<'_>, want: &DesiredRoute) -> Result<RoutePath, String> {
    Ok(match want.next_hop {
        NextHop::Via(ip) => RoutePath::Via(ip),
        NextHop::Tunnel(t) => RoutePath::Interface(ctx.dependency::<Tunnels>(&t)?.sw_if_index),
        NextHop::TunnelVia(t, ip) => {
            RoutePath::ViaOn(ip, ctx.dependency::<Tunnels>(&t)?.sw_if_index)
        }
    })
}

fn real_path(real: &RealRoute) -> RoutePath {
    match (real.via, real.next_hop) {
        (Some(p), _) => p,
        (None, NextHop::Via(ip)) => RoutePath::Via(ip),
        // Not written by this driver (a tunnel route always records its interface); an
        // address path is the closest honest guess, and a delete of it is harmless.
        (None, NextHop::Tunnel(t)) => RoutePath::Via(t.dst),
        (None, NextHop::TunnelVia(_, ip)) => RoutePath::Via(ip),
    }
}

impl Kind for Routes {
    const NAME: &'static str = "route";
    const STAGE: Stage = Stage::AfterInterfaces;
    type Key = RouteKey;
    type Want = DesiredRoute;
    type Real = RealRoute;

    fn plan(
        ctx: &Ctx<'_>,
        key: &RouteKey,
        want: &DesiredRoute,
        have: Option<&RealRoute>,
    ) -> Result<Option<Op>, String> {
        let via = path(ctx, want)?;
        if let Some(have) = have {
            if have.next_hop == want.next_hop && real_path(have) == via {
                return Ok(None);
            }
        }
        Ok(Some(Op::Route {
            dst: key.0,
            via,
            is_add: true,
        }))
    }

    fn applied(
        want: &DesiredRoute,
        _: Option<&RealRoute>,
        op: Op,
        _: OpReply,
    ) -> Result<RealRoute, String> {
        let Op::Route { via, .. } = op else {
            return Err(format!("unexpected {} for a route", op.name()));
        };
        Ok(RealRoute {
            next_hop: want.next_hop,
            via: match via {
                RoutePath::Via(_) => None,
                p @ (RoutePath::Interface(_) | RoutePath::ViaOn(..) | RoutePath::Unreachable) => {
                    Some(p)
                }
            },
        })
    }

    fn delete(key: &RouteKey, real: &RealRoute) -> Op {
        Op::Route {
            dst: key.0,
            via: real_path(real),
            is_add: false,
        }
    }
}
