//! The protocol guard's ACLs (`acl_add_replace`): created once, replaced in place when
//! their rules change (the index, and so every interface's ACL list, stays the same),
//! deleted once no interface the driver configured carries them (the ACL plugin refuses
//! to delete an ACL in use).

use std::collections::BTreeSet;

use calico_compile::{Acl, AclAction, AclFamily, AclKey, DesiredState};
use serde::{Deserialize, Serialize};

use super::{Ctx, Kind, Stage};
use crate::dataplane::{self, AclIndex, Op, OpError, OpReply, RETVAL_NO_SUCH_ENTRY};
use crate::reconcile::realized::Realized;
use crate::reconcile::Changed;

pub struct Acls;

/// An ACL VPP holds for us.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealAcl {
    pub id: AclIndex,
    pub acl: Acl,
}

impl Kind for Acls {
    const NAME: &'static str = "acl";
    const STAGE: Stage = Stage::BeforeInterfaces;
    type Key = AclKey;
    type Want = Acl;
    type Real = RealAcl;

    fn plan(
        _: &Ctx<'_>,
        _: &Self::Key,
        want: &Acl,
        have: Option<&RealAcl>,
    ) -> Result<Option<Op>, String> {
        if have.is_some_and(|h| h.acl == *want) {
            return Ok(None);
        }
        Ok(Some(Op::AclAddReplace {
            index: have.map(|h| h.id),
            tag: want.tag.clone(),
            rules: want.rules.iter().map(acl_rule).collect(),
        }))
    }

    fn applied(want: &Acl, _: Option<&RealAcl>, _: Op, reply: OpReply) -> Result<RealAcl, String> {
        match reply {
            OpReply::Created(id) => Ok(RealAcl {
                id: AclIndex(id),
                acl: want.clone(),
            }),
            OpReply::Done => Err("acl_add_replace: reply carried no ACL index".into()),
        }
    }

    /// Replacing an ACL someone deleted: create it afresh next time.
    fn lost(e: &OpError) -> bool {
        e.retval == RETVAL_NO_SUCH_ENTRY
    }

    fn delete(_: &Self::Key, real: &RealAcl) -> Op {
        Op::AclDelete { index: real.id }
    }

    fn retain_unused(
        realized: &Realized,
        _desired: &calico_compile::DesiredState,
        stale: &mut Vec<(AclKey, RealAcl)>,
    ) {
        let used = realized.referenced_acls();
        stale.retain(|(_, a)| !used.contains(&a.id));
    }

    /// Interfaces whose guard names an ACL that was (re)created or is held back.
    fn dependants(desired: &DesiredState, hit: &BTreeSet<AclKey>, work: &mut Changed) {
        work.interfaces.extend(
            desired
                .interfaces
                .iter()
                .filter(|(_, i)| hit.contains(&i.guard.input) || hit.contains(&i.guard.output))
                .map(|(k, _)| k.clone()),
        );
    }
}

/// A guard rule as VPP's ACL plugin takes it: any source and destination of its family.
pub fn acl_rule(r: &calico_compile::AclRule) -> dataplane::AclRule {
    let any = match r.family {
        AclFamily::V4 => ipnet::IpNet::V4(ipnet::Ipv4Net::default()),
        AclFamily::V6 => ipnet::IpNet::V6(ipnet::Ipv6Net::default()),
    };
    dataplane::AclRule {
        permit: r.action == AclAction::Permit,
        src: any,
        dst: any,
        proto: r.proto,
        sport_or_icmp_type: r.sport_or_icmp_type,
        dport_or_icmp_code: r.dport_or_icmp_code,
    }
}
