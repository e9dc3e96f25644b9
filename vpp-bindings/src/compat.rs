//! Compatibility of these bindings with a running VPP: every message the caller needs is
//! looked up by `name_crc` in VPP's message table. A report lists each one as present, CRC
//! differs, or missing; the client refuses to start on any mismatch.

use std::fmt;

use crate::client::Client;
use crate::gen::memclnt::{ControlPing, ControlPingReply, SockclntDelete, SockclntDeleteReply};
use crate::gen::vpe::{ShowVersion, ShowVersionReply};
use crate::message::{Message, MessageInfo, MessageTable};

/// Messages the client itself relies on; add them to a caller's own list.
pub const CLIENT_MESSAGES: &[MessageInfo] = &[
    ControlPing::INFO,
    ControlPingReply::INFO,
    SockclntDelete::INFO,
    SockclntDeleteReply::INFO,
    ShowVersion::INFO,
    ShowVersionReply::INFO,
];

/// How one required message fares in VPP's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompatStatus {
    /// Same name and CRC; VPP's id for it.
    Present { id: u16 },
    /// VPP has the name with another CRC: the message layout changed.
    CrcDiffers { vpp_name_crc: String },
    /// VPP has no message of that name (plugin not loaded, or removed).
    Missing,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompatEntry {
    pub info: MessageInfo,
    pub status: CompatStatus,
}

/// The outcome of a compatibility check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompatReport {
    /// `show_version`'s version, when it could be asked.
    pub vpp_version: Option<String>,
    pub entries: Vec<CompatEntry>,
}

impl CompatReport {
    pub fn is_compatible(&self) -> bool {
        self.mismatches().next().is_none()
    }

    /// Every required message that is not present with our CRC.
    pub fn mismatches(&self) -> impl Iterator<Item = &CompatEntry> {
        self.entries
            .iter()
            .filter(|e| !matches!(e.status, CompatStatus::Present { .. }))
    }

    fn counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for e in &self.entries {
            match e.status {
                CompatStatus::Present { .. } => c.0 += 1,
                CompatStatus::CrcDiffers { .. } => c.1 += 1,
                CompatStatus::Missing => c.2 += 1,
            }
        }
        c
    }
}

impl fmt::Display for CompatReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "VPP version: {}",
            self.vpp_version.as_deref().unwrap_or("unknown")
        )?;
        writeln!(f, "bindings generated from: {}", crate::gen::VPP_VERSION)?;
        for e in &self.entries {
            match &e.status {
                CompatStatus::Present { id } => {
                    writeln!(f, "  ok           {} (id {id})", e.info.name_crc)?
                }
                CompatStatus::CrcDiffers { vpp_name_crc } => writeln!(
                    f,
                    "  CRC DIFFERS  {}: ours {}, VPP has {vpp_name_crc}",
                    e.info.name, e.info.crc
                )?,
                CompatStatus::Missing => writeln!(f, "  MISSING      {}", e.info.name_crc)?,
            }
        }
        let (ok, crc, missing) = self.counts();
        write!(
            f,
            "{} messages: {ok} present, {crc} CRC differs, {missing} missing => {}",
            self.entries.len(),
            if self.is_compatible() {
                "compatible"
            } else {
                "INCOMPATIBLE"
            }
        )
    }
}

/// Checks `required` against a message table (no I/O).
pub fn check_table(
    table: &MessageTable,
    required: &[MessageInfo],
    vpp_version: Option<String>,
) -> CompatReport {
    let entries = required
        .iter()
        .map(|info| {
            let status = match table.id(info.name_crc) {
                Some(id) => CompatStatus::Present { id },
                None => match table.find_by_name(info.name) {
                    Some((_, other)) => CompatStatus::CrcDiffers {
                        vpp_name_crc: other.to_owned(),
                    },
                    None => CompatStatus::Missing,
                },
            };
            CompatEntry {
                info: *info,
                status,
            }
        })
        .collect();
    CompatReport {
        vpp_version,
        entries,
    }
}

/// The report for a connected client, with VPP's version from `show_version`. Connect with
/// an empty `ClientConfig::required` to get here even when VPP is incompatible.
pub async fn check(client: &Client, required: &[MessageInfo]) -> CompatReport {
    let version = match client.request(&ShowVersion {}).await {
        Ok(v) => Some(v.version),
        Err(e) => Some(format!("unknown (show_version failed: {e})")),
    };
    check_table(client.message_table(), required, version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gen::npol::{NpolRuleCreate, NpolRuleDelete};

    #[test]
    fn report_lists_present_crc_differs_and_missing() {
        let mut t = MessageTable::new();
        t.insert(100, NpolRuleCreate::NAME_CRC);
        t.insert(101, "npol_rule_delete_deadbeef");
        let required = [
            NpolRuleCreate::INFO,
            NpolRuleDelete::INFO,
            ShowVersionReply::INFO,
        ];
        let r = check_table(&t, &required, Some("v1".into()));
        assert_eq!(r.entries[0].status, CompatStatus::Present { id: 100 });
        assert_eq!(
            r.entries[1].status,
            CompatStatus::CrcDiffers {
                vpp_name_crc: "npol_rule_delete_deadbeef".into()
            }
        );
        assert_eq!(r.entries[2].status, CompatStatus::Missing);
        assert!(!r.is_compatible());
        assert_eq!(r.mismatches().count(), 2);
        let text = r.to_string();
        assert!(text.contains("CRC DIFFERS  npol_rule_delete"), "{text}");
        assert!(text.contains("MISSING      show_version_reply_"), "{text}");
        assert!(text.contains("INCOMPATIBLE"), "{text}");
    }
}
