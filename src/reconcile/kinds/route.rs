//! Routes to other nodes' workloads (`ip_route_add_del` in the default table). An add
//! replaces the route's paths, so a changed next hop is one write. Only destinations in
//! the realized record are ever deleted: VPP's other routes (interface prefixes, routes
//! someone else added) are never touched, and a prefix is only ours once VPP acknowledged
//! our add of it.

use calico_compile::{DesiredRoute, NextHop, RouteKey};

use super::{Ctx, Kind, Stage};
use crate::dataplane::{Op, OpReply};

pub struct Routes;

/// A route VPP holds for us: the next hop it was given.
pub type RealRoute = DesiredRoute;

fn add_del(key: &RouteKey, route: &DesiredRoute, is_add: bool) -> Op {
    let NextHop::Via(via) = route.next_hop;
    Op::Route {
        dst: key.0,
        via,
        is_add,
    }
}

impl Kind for Routes {
    const NAME: &'static str = "route";
    const STAGE: Stage = Stage::AfterInterfaces;
    type Key = RouteKey;
    type Want = DesiredRoute;
    type Real = RealRoute;

    fn plan(
        _: &Ctx<'_>,
        key: &RouteKey,
        want: &DesiredRoute,
        have: Option<&RealRoute>,
    ) -> Result<Option<Op>, String> {
        if have == Some(want) {
            return Ok(None);
        }
        Ok(Some(add_del(key, want, true)))
    }

    fn applied(
        want: &DesiredRoute,
        _: Option<&RealRoute>,
        _: Op,
        _: OpReply,
    ) -> Result<RealRoute, String> {
        Ok(*want)
    }

    fn delete(key: &RouteKey, real: &RealRoute) -> Op {
        add_del(key, real, false)
    }
}
