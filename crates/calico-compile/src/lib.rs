//! Model → desired VPP (npol) objects, deterministic and incremental; plus a reference
//! evaluator of Calico policy semantics, written straight from the model, and npol's
//! evaluation of the compiled objects, so the two can be held equal.
//!
//! Pure: no tokio, no protobuf, no VPP I/O.
//!
//! How Calico lands on npol (DESIGN section 3), per workload interface:
//! - RX (the pod's egress): first `a:<hash>`, Felix's anti-spoofing (deny any source
//!   outside the pod's own nets and `allow_spoofed_source_prefixes`, both families; IPv6
//!   link-local passes if the pod has IPv6), keyed by the permitted sources so only pods
//!   with the same sources share one;
//!   then `x:workload-encap-drop` (VXLAN to `VXLANPort`, IPIP), then
//!   `x:workload-to-host-drop` when `DefaultEndpointToHostAction` is DROP (destinations in
//!   the `h:local-host` set, built from `LOCAL_HOST` routes), then one `t:<tier>:eg:<hash>`
//!   policy per tier with an enforced egress policy. TX (the pod's ingress): the `t:…:in:…`
//!   policies. Policy default PASS (to the profiles), profile default DENY.
//! - A tier policy concatenates its non-staged policies' rules (Calico pass → npol LOG, which
//!   leaves the tier; log rules dropped) and ends with deny-all unless the tier's default is
//!   Pass. Its key hashes the policy list, so endpoints with the same list share it.
//! - Profiles are `p:<name>` (pass → LOG, i.e. next profile). Rules are content-keyed
//!   (`r:<hash>`) and shared. Calico sets are `s:<id>`; intersections and service-port
//!   sets are derived (`d:<hash>`) and kept current as members change.
//! - Fail closed: invalid, unknown or broken (bad IP set reference) policies and profiles
//!   deny at their position; inactive endpoints and interfaces claimed by two endpoints deny
//!   everything; ICMP type/code rules are narrowed (allow) or widened (deny, pass). Every such
//!   decision is a [`Note`] in the [`CompileReport`].
//! - npol never sees protocols cnat builds no flow tuple for (IPIP, GRE, ESP, ICMP other
//!   than echo): a shared protocol guard ACL per direction ([`guard`]) on every workload
//!   interface drops them, stricter than Felix where a policy allows them (reported).
//! - Not enforced (reported): host endpoint policy.

pub mod compiler;
pub mod config;
pub mod desired;
pub mod explain;
pub mod guard;
mod hash;
pub mod ipsets;
pub mod lookup;
pub mod pods;
pub mod reference;
pub mod report;
pub mod routes;
pub mod rules;
pub mod services;
pub mod snat;

pub use compiler::{compile, ChangeSet, Compiled, Compiler};
pub use config::{EndpointToHostAction, PolicyConfig};
pub use desired::{
    AclKey, DesiredDiff, DesiredInterface, DesiredState, InterfaceKey, IpSetKey, KindDiff,
    KindDiffs, MemberDelta, PolicyKey, RuleKey,
};
pub use guard::{Acl, AclAction, AclFamily, AclRule, GuardOptions, InterfaceGuard};
pub use lookup::{evaluate_compiled, explain_compiled, npol_direction, ExplainedStep};
pub use pods::{DesiredPod, DesiredPodLink, PodLink};
pub use report::{CalicoDirection, CompileReport, Note, Subject};
pub use routes::{
    DesiredLocalRoute, DesiredRoute, DesiredTunnel, DesiredUplink, Encap, L2Ends, NextHop,
    RouteKey, TunnelKey, UplinkKey,
};
pub use snat::{
    DesiredSnat, DesiredSnatExclude, DesiredSnatIf, SnatExcludeKey, SnatIfKey, SnatKey,
};
