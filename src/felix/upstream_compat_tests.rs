//! Wire compatibility with Calico's own `felixbackend.proto`, checked descriptor by descriptor:
//! every upstream message field must exist here with the same number, wire type, cardinality,
//! referenced type and oneof membership, and every enum value with the same number.
//!
//! Needs Calico's own files, which are not part of this repository: every
//! `*/felixbackend.proto` under `$CALICO_UPSTREAM_DIR` (default `../shared/upstream`, which
//! holds master 87c15906 and v3.32.1). `.ci/run` runs it; without the files it fails saying
//! so, which is why it is ignored by a plain `cargo test`.

use std::collections::BTreeMap;
use std::path::PathBuf;

fn upstream_protos() -> Vec<PathBuf> {
    let dir = std::env::var_os("CALICO_UPSTREAM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/upstream"));
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (set CALICO_UPSTREAM_DIR)", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("felixbackend.proto"))
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    assert!(
        !out.is_empty(),
        "no */felixbackend.proto under {}",
        dir.display()
    );
    out
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
#[ignore = "needs Calico's felixbackend.proto files: ../shared/upstream or CALICO_UPSTREAM_DIR"]
fn every_upstream_field_and_enum_value_matches() {
    let ours = shape(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("proto/felixbackend.proto"));
    let mut problems = Vec::new();
    let releases = upstream_protos();
    for upstream in &releases {
        let theirs = shape(upstream);
        let at = upstream.display();
        for (name, fields) in &theirs {
            let Some(mine) = ours.get(name) else {
                problems.push(format!("{at}: {name}: missing"));
                continue;
            };
            for (num, desc) in fields {
                match mine.get(num) {
                    None => problems.push(format!("{at}: {name} #{num} ({desc}): missing")),
                    Some(d) if d != desc => {
                        problems.push(format!("{at}: {name} #{num}: upstream {desc}, ours {d}"))
                    }
                    _ => {}
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    eprintln!("checked against {} releases: {releases:?}", releases.len());
}
