//! npol rules and policies: created with an id VPP chooses, updated in place (the id, and
//! so every reference to it, stays), deleted once nothing realized refers to them (npol
//! accepts deleting a policy in use and leaves a dangling reference). npol has no dump: the
//! realized record is the only way to find them again.

use std::collections::BTreeSet;

use calico_compile::{DesiredState, IpSetKey, PolicyKey, RuleKey};
use serde::{Deserialize, Serialize};

use super::{Ctx, Kind, Stage};
use crate::dataplane::{IpSetId, Op, OpReply, PolicyId, RuleId};
use crate::reconcile::realized::Realized;
use crate::reconcile::status::ObjectRef;
use crate::reconcile::Changed;

pub struct Rules;

/// A rule VPP holds for us, with the ipset ids it was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealRule {
    pub id: RuleId,
    pub rule: npol::Rule<IpSetId>,
}

impl Kind for Rules {
    const NAME: &'static str = "rule";
    const STAGE: Stage = Stage::BeforeInterfaces;
    type Key = RuleKey;
    type Want = npol::Rule<IpSetKey>;
    type Real = RealRule;

    fn plan(
        ctx: &Ctx<'_>,
        _: &Self::Key,
        want: &npol::Rule<IpSetKey>,
        have: Option<&RealRule>,
    ) -> Result<Option<Op>, String> {
        let rule = resolve_rule(ctx, want)?;
        Ok(match have {
            None => Some(Op::RuleCreate { rule }),
            Some(h) if h.rule != rule => Some(Op::RuleUpdate { id: h.id, rule }),
            Some(_) => None,
        })
    }

    /// npol never reports an unknown id on update (it creates a new object and does not say
    /// its id), so a refusal leaves our record as it is.
    fn applied(
        _: &npol::Rule<IpSetKey>,
        have: Option<&RealRule>,
        op: Op,
        reply: OpReply,
    ) -> Result<RealRule, String> {
        let (Op::RuleCreate { rule } | Op::RuleUpdate { rule, .. }) = op else {
            return Err(format!("rule: unexpected operation {}", op.name()));
        };
        match (reply, have) {
            (OpReply::Created(id), _) => Ok(RealRule {
                id: RuleId(id),
                rule,
            }),
            (OpReply::Done, Some(h)) => Ok(RealRule { id: h.id, rule }),
            (OpReply::Done, None) => Err("npol_rule_create: reply carried no id".into()),
        }
    }

    fn delete(_: &Self::Key, real: &RealRule) -> Op {
        Op::RuleDelete { id: real.id }
    }

    fn retain_unused(
        realized: &Realized,
        _desired: &calico_compile::DesiredState,
        stale: &mut Vec<(RuleKey, RealRule)>,
    ) {
        let used = realized.referenced_rules();
        stale.retain(|(_, r)| !used.contains(&r.id));
    }

    /// Policies that list a rule that was (re)created or is held back.
    fn dependants(desired: &DesiredState, hit: &BTreeSet<RuleKey>, work: &mut Changed) {
        work.kinds.policies.extend(
            desired
                .policies
                .iter()
                .filter(|(_, p)| p.inbound.iter().chain(&p.outbound).any(|k| hit.contains(k)))
                .map(|(k, _)| k.clone()),
        );
    }
}

/// A rule with the VPP ids of the ipsets it names, once they are all in VPP.
fn resolve_rule(ctx: &Ctx<'_>, want: &npol::Rule<IpSetKey>) -> Result<npol::Rule<IpSetId>, String> {
    let mut entries = Vec::with_capacity(want.entries.len());
    for e in &want.entries {
        let data = match &e.data {
            npol::EntryData::Cidr(c) => npol::EntryData::Cidr(*c),
            npol::EntryData::PortRange { start, end } => npol::EntryData::PortRange {
                start: *start,
                end: *end,
            },
            npol::EntryData::IpSet(k) => npol::EntryData::IpSet(ipset_id(ctx, k)?),
            npol::EntryData::PortIpSet(k) => npol::EntryData::PortIpSet(ipset_id(ctx, k)?),
        };
        entries.push(npol::Entry {
            is_src: e.is_src,
            is_not: e.is_not,
            data,
        });
    }
    Ok(npol::Rule {
        action: want.action,
        filters: want.filters,
        entries,
    })
}

fn ipset_id(ctx: &Ctx<'_>, key: &IpSetKey) -> Result<IpSetId, String> {
    if !ctx.desired.ipsets.contains_key(key) {
        return Err(format!("ipset {key} is not in the desired state"));
    }
    if ctx.blocked_lazy(|| ObjectRef::IpSet(key.clone())) {
        return Err(format!("waiting for ipset {key}"));
    }
    ctx.realized
        .ipsets
        .get(key)
        .map(|r| r.id)
        .ok_or_else(|| format!("waiting for ipset {key}"))
}

pub struct Policies;

/// A policy VPP holds for us, with the rule ids it was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealPolicy {
    pub id: PolicyId,
    pub policy: npol::Policy<RuleId>,
}

impl Kind for Policies {
    const NAME: &'static str = "policy";
    const STAGE: Stage = Stage::BeforeInterfaces;
    type Key = PolicyKey;
    type Want = npol::Policy<RuleKey>;
    type Real = RealPolicy;

    fn plan(
        ctx: &Ctx<'_>,
        _: &Self::Key,
        want: &npol::Policy<RuleKey>,
        have: Option<&RealPolicy>,
    ) -> Result<Option<Op>, String> {
        let ids = |keys: &[RuleKey]| -> Result<Vec<RuleId>, String> {
            keys.iter()
                .map(|k| ctx.dependency::<Rules>(k).map(|r| r.id))
                .collect()
        };
        let policy = npol::Policy {
            inbound: ids(&want.inbound)?,
            outbound: ids(&want.outbound)?,
        };
        Ok(match have {
            None => Some(Op::PolicyCreate { policy }),
            Some(h) if h.policy != policy => Some(Op::PolicyUpdate { id: h.id, policy }),
            Some(_) => None,
        })
    }

    fn applied(
        _: &npol::Policy<RuleKey>,
        have: Option<&RealPolicy>,
        op: Op,
        reply: OpReply,
    ) -> Result<RealPolicy, String> {
        let (Op::PolicyCreate { policy } | Op::PolicyUpdate { policy, .. }) = op else {
            return Err(format!("policy: unexpected operation {}", op.name()));
        };
        match (reply, have) {
            (OpReply::Created(id), _) => Ok(RealPolicy {
                id: PolicyId(id),
                policy,
            }),
            (OpReply::Done, Some(h)) => Ok(RealPolicy { id: h.id, policy }),
            (OpReply::Done, None) => Err("npol_policy_create: reply carried no id".into()),
        }
    }

    fn delete(_: &Self::Key, real: &RealPolicy) -> Op {
        Op::PolicyDelete { id: real.id }
    }

    fn retain_unused(
        realized: &Realized,
        _desired: &calico_compile::DesiredState,
        stale: &mut Vec<(PolicyKey, RealPolicy)>,
    ) {
        let used = realized.referenced_policies();
        stale.retain(|(_, p)| !used.contains(&p.id));
    }

    /// Interfaces whose configuration lists a policy that was (re)created or is held back.
    fn dependants(desired: &DesiredState, hit: &BTreeSet<PolicyKey>, work: &mut Changed) {
        work.interfaces.extend(
            desired
                .interfaces
                .iter()
                .filter(|(_, i)| {
                    let c = &i.config;
                    c.rx_policies
                        .iter()
                        .chain(&c.tx_policies)
                        .chain(&c.profiles)
                        .any(|k| hit.contains(k))
                })
                .map(|(k, _)| k.clone()),
        );
    }
}
