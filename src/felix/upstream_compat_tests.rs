//! Wire compatibility with Calico's own `felixbackend.proto`, checked descriptor by descriptor:
//! every upstream message field must exist here with the same number, wire type, cardinality,
//! referenced type and oneof membership, and every enum value with the same number.
//!
//! Needs upstream's file, which is not part of this repository: set
//! CALICO_UPSTREAM_FELIXBACKEND_PROTO to its path, or have the Calico mirror at
//! /work/.mirror/projectcalico+calico/repo. Without either the test says so and passes.

use std::collections::BTreeMap;
use std::path::PathBuf;

const MIRROR: &str = "/work/.mirror/projectcalico+calico/repo";

fn upstream_proto() -> Option<(PathBuf, tempfile::TempDir)> {
    let dir = tempfile::tempdir().ok()?;
    let dest = dir.path().join("felixbackend.proto");
    if let Ok(p) = std::env::var("CALICO_UPSTREAM_FELIXBACKEND_PROTO") {
        std::fs::copy(p, &dest).ok()?;
        return Some((dest, dir));
    }
    let out = std::process::Command::new("git")
        .args(["-C", MIRROR, "show", "HEAD:felix/proto/felixbackend.proto"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    std::fs::write(&dest, out.stdout).ok()?;
    Some((dest, dir))
}

/// (message or enum path) → (number → description) for every field and enum value.
type Shape = BTreeMap<String, BTreeMap<i32, String>>;

fn shape(file: &std::path::Path) -> Shape {
    let dir = file.parent().unwrap();
    let fds = protox::compile([file.file_name().unwrap()], [dir]).expect("compile proto");
    let mut out = Shape::new();
    for f in &fds.file {
        for e in &f.enum_type {
            out.insert(
                format!("felix.{}", e.name()),
                e.value
                    .iter()
                    .map(|v| (v.number(), v.name().to_string()))
                    .collect(),
            );
        }
        // Walk nested messages with a stack: the descriptor type is not nameable here
        // (protox does not re-export prost-types).
        let mut stack: Vec<(String, _)> = f
            .message_type
            .iter()
            .map(|m| (format!("felix.{}", m.name()), m))
            .collect();
        while let Some((path, m)) = stack.pop() {
            let fields = m
                .field
                .iter()
                .map(|f| {
                    let oneof = f
                        .oneof_index
                        .and_then(|i| m.oneof_decl.get(i as usize))
                        .map(|o| o.name().to_string())
                        .unwrap_or_default();
                    (
                        f.number(),
                        format!(
                            "field type={:?} label={:?} ref={} oneof={}",
                            f.r#type,
                            f.label,
                            f.type_name(),
                            oneof
                        ),
                    )
                })
                .collect();
            for e in &m.enum_type {
                out.insert(
                    format!("{path}.{}", e.name()),
                    e.value
                        .iter()
                        .map(|v| (v.number(), v.name().to_string()))
                        .collect(),
                );
            }
            stack.extend(
                m.nested_type
                    .iter()
                    .map(|n| (format!("{path}.{}", n.name()), n)),
            );
            out.insert(path, fields);
        }
    }
    out
}

#[test]
fn every_upstream_field_and_enum_value_matches() {
    let Some((upstream, _dir)) = upstream_proto() else {
        eprintln!("SKIPPED: upstream felixbackend.proto not available (set CALICO_UPSTREAM_FELIXBACKEND_PROTO)");
        return;
    };
    let theirs = shape(&upstream);
    let ours = shape(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("proto/felixbackend.proto"));
    let mut problems = Vec::new();
    for (name, fields) in &theirs {
        let Some(mine) = ours.get(name) else {
            problems.push(format!("{name}: missing"));
            continue;
        };
        for (num, desc) in fields {
            match mine.get(num) {
                None => problems.push(format!("{name} #{num} ({desc}): missing")),
                Some(d) if d != desc => {
                    problems.push(format!("{name} #{num}: upstream {desc}, ours {d}"))
                }
                _ => {}
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
