//! A readable text view of the simulated state, in the spirit of VPP's `show` commands.
//! For people (tests' failure messages, the demo); machines use the JSON form.

use std::fmt::Write;

use npol::EntryData;

use crate::state::SimState;

impl SimState {
    pub fn render_text(&self) -> String {
        let mut o = String::new();
        self.render_interfaces(&mut o);
        self.render_fib(&mut o);
        self.render_cnat(&mut o);
        self.render_npol(&mut o);
        self.render_acl(&mut o);
        o
    }

    /// Like `show acl-plugin acl` and `show acl-plugin interface`, condensed.
    fn render_acl(&self, o: &mut String) {
        let a = &self.acl;
        if a.acls.is_empty() && a.input.is_empty() && a.output.is_empty() {
            return;
        }
        let _ = writeln!(o, "acl:");
        for (id, acl) in a.acls.iter() {
            let _ = writeln!(o, "  acl {id} tag {:?} {} rules", acl.tag, acl.rules.len());
            for r in &acl.rules {
                let action = match r.action {
                    0 => "deny",
                    1 => "permit",
                    _ => "permit+reflect",
                };
                let _ = writeln!(
                    o,
                    "    {action} {} -> {} proto {} sport/type {}-{} dport/code {}-{}",
                    r.src,
                    r.dst,
                    r.proto,
                    r.sport_or_type.0,
                    r.sport_or_type.1,
                    r.dport_or_code.0,
                    r.dport_or_code.1
                );
            }
        }
        for (sw, l) in &a.input {
            let _ = writeln!(o, "  interface {sw}: input {l:?}");
        }
        for (sw, l) in &a.output {
            let _ = writeln!(o, "  interface {sw}: output {l:?}");
        }
    }

    fn render_interfaces(&self, o: &mut String) {
        let _ = writeln!(o, "interfaces:");
        for (idx, i) in self.interfaces.iter() {
            let state = match (i.admin_up, i.link_up) {
                (true, true) => "up",
                (true, false) => "up/link-down",
                _ => "down",
            };
            let _ = write!(
                o,
                "  [{idx}] {} ({}) {state} mac {}",
                i.name,
                i.kind.dev_type(),
                i.mac
            );
            if !i.tag.is_empty() {
                let _ = write!(o, " tag {:?}", i.tag);
            }
            if i.table_v4 != 0 || i.table_v6 != 0 {
                let _ = write!(o, " table v4:{} v6:{}", i.table_v4, i.table_v6);
            }
            if i.cnat {
                let _ = write!(o, " cnat");
            }
            for a in &i.addresses {
                let _ = write!(o, " {a}");
            }
            let _ = writeln!(o);
        }
        if !self.neighbors.is_empty() {
            let _ = writeln!(o, "neighbors:");
            for ((sw, ip), n) in &self.neighbors {
                let _ = writeln!(o, "  [{sw}] {ip} {} flags {}", n.mac, n.flags);
            }
        }
    }

    fn render_fib(&self, o: &mut String) {
        for (k, t) in &self.tables {
            let _ = writeln!(
                o,
                "table {} {} ({}):",
                k.table_id,
                if k.is_ip6 { "ip6" } else { "ip4" },
                t.name
            );
            for (pfx, paths) in &t.routes {
                let _ = write!(o, "  {pfx}");
                for p in paths {
                    let _ = write!(
                        o,
                        " via sw_if_index {} nh {:02x?} type {}",
                        p.sw_if_index,
                        &p.nh[..4.min(p.nh.len())],
                        p.path_type
                    );
                }
                let _ = writeln!(o);
            }
        }
    }

    fn render_cnat(&self, o: &mut String) {
        if self.cnat.translations.is_empty() && self.cnat.snat.is_none() {
            return;
        }
        let _ = writeln!(o, "cnat:");
        for (id, t) in self.cnat.translations.iter() {
            let _ = write!(
                o,
                "  translation {id}: {}:{} proto {} ->",
                t.vip.addr, t.vip.port, t.proto
            );
            for p in &t.paths {
                let _ = write!(o, " {}:{}", p.dst.addr, p.dst.port);
            }
            let _ = writeln!(o);
        }
        if let Some(s) = &self.cnat.snat {
            let _ = writeln!(
                o,
                "  snat ip4 {:?} ip6 {:?} policy {} exclude {:?}",
                s.ip4, s.ip6, s.policy, s.exclude
            );
        }
    }

    fn render_npol(&self, o: &mut String) {
        let n = &self.npol;
        if n.ipsets.is_empty()
            && n.rules.is_empty()
            && n.policies.is_empty()
            && n.interfaces.is_empty()
        {
            return;
        }
        let _ = writeln!(o, "npol:");
        for (id, s) in n.ipsets.iter() {
            let _ = writeln!(o, "  ipset {id} {:?} {} members", s.kind, s.members.len());
        }
        for (id, r) in n.rules.iter() {
            let _ = write!(o, "  rule {id} {:?}", r.action);
            for f in r
                .filters
                .iter()
                .filter(|f| f.kind != npol::FilterType::None)
            {
                let _ = write!(
                    o,
                    " [{:?}{}{}]",
                    f.kind,
                    if f.should_match { "==" } else { "!=" },
                    f.value
                );
            }
            for e in &r.entries {
                let side = if e.is_src { "src" } else { "dst" };
                let op = if e.is_not { "!=" } else { "==" };
                let v = match &e.data {
                    EntryData::Cidr(c) => c.to_string(),
                    EntryData::PortRange { start, end } => format!("{start}-{end}"),
                    EntryData::IpSet(s) => format!("set{s}"),
                    EntryData::PortIpSet(s) => format!("portset{s}"),
                };
                let _ = write!(o, " {side}{op}{v}");
            }
            let _ = writeln!(o);
        }
        for (id, p) in n.policies.iter() {
            let _ = writeln!(
                o,
                "  policy {id} inbound {:?} outbound {:?}",
                p.inbound, p.outbound
            );
        }
        for (sw, c) in &n.interfaces {
            let _ = writeln!(
                o,
                "  interface {sw}: rx {:?} tx {:?} profiles {:?} invert {} defaults rx {:?}/{:?} tx {:?}/{:?}",
                c.rx_policies, c.tx_policies, c.profiles, c.invert_rx_tx,
                c.policy_default_rx, c.profile_default_rx, c.policy_default_tx, c.profile_default_tx
            );
        }
    }
}
