//! Kubernetes service frontends as cnat translations: one per (VIP, protocol, port), its
//! backends replaced in place by another `cnat_translation_update` of the same frontend.
//! VPP's id for it (from the reply) is the handle to delete it by, so it is kept in the
//! state file. Nothing is deleted before the Kubernetes watch has both its lists (until
//! then an empty desired table means "not known yet", not "no services").

use serde::{Deserialize, Serialize};

use calico_compile::services::{DesiredTranslation, FrontendKey};

use super::{Ctx, Kind, Stage};
use crate::dataplane::{Op, OpReply};

pub struct Translations;

/// A translation VPP holds for us: its id and what it was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealTranslation {
    pub id: u32,
    pub real_ip: bool,
    pub backends: Vec<(std::net::IpAddr, u16)>,
    pub maglev: bool,
}

impl Kind for Translations {
    const NAME: &'static str = "service frontend";
    const STAGE: Stage = Stage::AfterInterfaces;
    type Key = FrontendKey;
    type Want = DesiredTranslation;
    type Real = RealTranslation;

    fn plan(
        _ctx: &Ctx<'_>,
        key: &FrontendKey,
        want: &DesiredTranslation,
        have: Option<&RealTranslation>,
    ) -> Result<Option<Op>, String> {
        if have.is_some_and(|h| {
            h.backends == want.backends && h.real_ip == want.real_ip && h.maglev == want.maglev
        }) {
            return Ok(None);
        }
        Ok(Some(Op::CnatTranslation {
            vip: key.vip,
            proto: key.proto.number(),
            port: key.port,
            real_ip: want.real_ip,
            backends: want.backends.clone(),
            maglev: want.maglev,
        }))
    }

    fn applied(
        want: &DesiredTranslation,
        _have: Option<&RealTranslation>,
        op: Op,
        reply: OpReply,
    ) -> Result<RealTranslation, String> {
        match (op, reply) {
            (Op::CnatTranslation { .. }, OpReply::Created(id)) => Ok(RealTranslation {
                id,
                real_ip: want.real_ip,
                backends: want.backends.clone(),
                maglev: want.maglev,
            }),
            (op, reply) => Err(format!("unexpected reply {reply:?} to {}", op.name())),
        }
    }

    fn delete(_key: &FrontendKey, real: &RealTranslation) -> Op {
        Op::CnatTranslationDel { id: real.id }
    }

    /// Before the watch has both lists, nothing is known to be gone.
    fn retain_unused(
        _realized: &crate::reconcile::realized::Realized,
        desired: &calico_compile::DesiredState,
        stale: &mut Vec<(FrontendKey, RealTranslation)>,
    ) {
        if !desired.services_synced {
            stale.clear();
        }
    }
}
