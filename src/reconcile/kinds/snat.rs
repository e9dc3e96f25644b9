//! SNAT for masquerading pools on cnat (see `calico_compile::snat` for what is wanted):
//! the node's settings (source addresses, then the "interface + prefix" policy), one
//! exclusion per prefix that keeps its source, one inclusion per (pod interface, family).
//!
//! Exclusions and inclusions live in cnat's SNAT entry, which the settings create: they
//! wait for it, and it is deleted only after them.
//!
//! cnat has no read-back for any of it, and each exclusion add bumps a per-prefix-length
//! refcount that a later delete does not fully undo (one delete removes the prefix): the
//! realized record is the only truth, so each object is written once and never re-applied
//! blindly; a restart with the same record makes no write. An inclusion follows its pod's
//! interface: it waits until the interface is bound with cnat on (without cnat on the pod's
//! interface nothing is translated), and is forgotten with the interface when VPP deletes
//! it.

use serde::{Deserialize, Serialize};

use calico_compile::{
    DesiredSnat, DesiredSnatExclude, DesiredSnatIf, SnatExcludeKey, SnatIfKey, SnatKey,
};

use std::collections::BTreeSet;

use calico_compile::DesiredState;

use super::{Ctx, Kind, Stage};
use crate::dataplane::{
    Op, OpError, OpReply, SwIfIndex, RETVAL_FEATURE_DISABLED, RETVAL_INVALID_SW_IF_INDEX,
};
use crate::reconcile::realized::{Orphans, Realized};
use crate::reconcile::Changed;

fn unexpected(op: &Op, reply: &OpReply) -> String {
    format!("unexpected reply {reply:?} to {}", op.name())
}

/// The node's SNAT settings.
pub struct Snat;

/// The settings VPP holds: the addresses last set (with the "interface + prefix" policy
/// that always follows them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealSnat {
    pub addresses: DesiredSnat,
}

impl Kind for Snat {
    const NAME: &'static str = "snat";
    const STAGE: Stage = Stage::AfterInterfaces;
    type Key = SnatKey;
    type Want = DesiredSnat;
    type Real = RealSnat;

    fn plan(
        _: &Ctx<'_>,
        _: &SnatKey,
        want: &DesiredSnat,
        have: Option<&RealSnat>,
    ) -> Result<Option<Op>, String> {
        if have.map(|h| h.addresses) == Some(*want) {
            return Ok(None);
        }
        Ok(Some(Op::SnatSet {
            v4: want.v4,
            v6: want.v6,
        }))
    }

    fn applied(
        _: &DesiredSnat,
        _: Option<&RealSnat>,
        op: Op,
        reply: OpReply,
    ) -> Result<RealSnat, String> {
        match op {
            Op::SnatSet { v4, v6 } => Ok(RealSnat {
                addresses: DesiredSnat { v4, v6 },
            }),
            op => Err(unexpected(&op, &reply)),
        }
    }

    /// No pool masquerades any more: the entry goes (cnat's "none" policy would translate
    /// everything, so the policy is never just switched off).
    fn delete(_: &SnatKey, _: &RealSnat) -> Op {
        Op::SnatSet { v4: None, v6: None }
    }

    /// Deleting an entry cnat does not have answers `FEATURE_DISABLED`.
    fn already_gone(error: &OpError) -> bool {
        error.retval == RETVAL_FEATURE_DISABLED
    }

    /// The entry holds the exclusions and inclusions: it stays until they are gone.
    fn retain_unused(
        realized: &Realized,
        _desired: &calico_compile::DesiredState,
        stale: &mut Vec<(SnatKey, RealSnat)>,
    ) {
        if !realized.kinds.snat_excludes.is_empty() || !realized.kinds.snat_interfaces.is_empty() {
            stale.clear();
        }
    }

    /// A new entry starts without exclusions or inclusions: look at them again.
    fn dependants(desired: &DesiredState, _: &BTreeSet<SnatKey>, work: &mut Changed) {
        work.kinds
            .snat_excludes
            .extend(desired.snat_excludes.keys().copied());
        work.kinds
            .snat_interfaces
            .extend(desired.snat_interfaces.keys().cloned());
    }
}

/// Prefixes whose traffic keeps its source.
pub struct SnatExcludes;

/// An exclusion VPP holds (added once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealSnatExclude;

impl Kind for SnatExcludes {
    const NAME: &'static str = "snat exclusion";
    const STAGE: Stage = Stage::AfterInterfaces;
    type Key = SnatExcludeKey;
    type Want = DesiredSnatExclude;
    type Real = RealSnatExclude;

    fn plan(
        ctx: &Ctx<'_>,
        key: &SnatExcludeKey,
        _: &DesiredSnatExclude,
        have: Option<&RealSnatExclude>,
    ) -> Result<Option<Op>, String> {
        ctx.dependency::<Snat>(&SnatKey)?;
        Ok(have.is_none().then_some(Op::SnatExclude {
            prefix: key.0,
            is_add: true,
        }))
    }

    fn applied(
        _: &DesiredSnatExclude,
        _: Option<&RealSnatExclude>,
        op: Op,
        reply: OpReply,
    ) -> Result<RealSnatExclude, String> {
        match op {
            Op::SnatExclude { is_add: true, .. } => Ok(RealSnatExclude),
            op => Err(unexpected(&op, &reply)),
        }
    }

    fn delete(key: &SnatExcludeKey, _: &RealSnatExclude) -> Op {
        Op::SnatExclude {
            prefix: key.0,
            is_add: false,
        }
    }

    /// An absent prefix is deleted without complaint; without the SNAT entry (which held
    /// it) cnat answers `FEATURE_DISABLED`.
    fn already_gone(error: &OpError) -> bool {
        error.retval == RETVAL_FEATURE_DISABLED
    }
}

/// Pod interfaces whose traffic is translated.
pub struct SnatInterfaces;

/// The interface an inclusion was made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealSnatIf {
    pub sw_if_index: SwIfIndex,
}

impl Kind for SnatInterfaces {
    const NAME: &'static str = "snat interface";
    const STAGE: Stage = Stage::AfterInterfaces;
    type Key = SnatIfKey;
    type Want = DesiredSnatIf;
    type Real = RealSnatIf;

    fn plan(
        ctx: &Ctx<'_>,
        key: &SnatIfKey,
        _: &DesiredSnatIf,
        have: Option<&RealSnatIf>,
    ) -> Result<Option<Op>, String> {
        ctx.dependency::<Snat>(&SnatKey)?;
        let bound = ctx
            .realized
            .interfaces
            .get(&key.interface)
            .filter(|i| i.cnat)
            .ok_or_else(|| format!("waiting for interface {} to be bound", key.interface))?;
        if have.is_some_and(|h| h.sw_if_index == bound.sw_if_index) {
            return Ok(None);
        }
        Ok(Some(Op::SnatInterface {
            sw_if_index: bound.sw_if_index,
            v6: key.v6,
            is_add: true,
        }))
    }

    fn applied(
        _: &DesiredSnatIf,
        _: Option<&RealSnatIf>,
        op: Op,
        reply: OpReply,
    ) -> Result<RealSnatIf, String> {
        match op {
            Op::SnatInterface {
                sw_if_index,
                is_add: true,
                ..
            } => Ok(RealSnatIf { sw_if_index }),
            op => Err(unexpected(&op, &reply)),
        }
    }

    fn lost(error: &OpError) -> bool {
        error.retval == RETVAL_INVALID_SW_IF_INDEX
    }

    fn interface(real: &RealSnatIf) -> Option<SwIfIndex> {
        Some(real.sw_if_index)
    }

    /// Without the SNAT entry cnat answers `FEATURE_DISABLED`; for an interface VPP no
    /// longer has, `INVALID_SW_IF_INDEX` (the record would have been forgotten with the
    /// interface had its delete been seen first). cnat keeps the bit of a deleted interface
    /// (it has no interface-delete hook), so an index VPP hands out again inherits it: the
    /// record goes to the orphans ([`Kind::forgotten`]), which clear it when they can.
    fn already_gone(error: &OpError) -> bool {
        error.retval == RETVAL_FEATURE_DISABLED || error.retval == RETVAL_INVALID_SW_IF_INDEX
    }

    fn forgotten(key: &SnatIfKey, real: &RealSnatIf, orphans: &mut Orphans) {
        orphans.snat_inclusions.insert((real.sw_if_index, key.v6));
    }

    fn delete(key: &SnatIfKey, real: &RealSnatIf) -> Op {
        Op::SnatInterface {
            sw_if_index: real.sw_if_index,
            v6: key.v6,
            is_add: false,
        }
    }
}
