//! The binding generator, staged like GoVPP's: [`schema`] parses `.api.json` files, [`model`]
//! resolves them, [`emit`] writes Rust. Used by the `vpp-apigen` binary and by the test that
//! checks the committed `src/gen/` is up to date. Never called at run time by the client.

pub mod emit;
pub mod model;
pub mod schema;

use std::path::{Path, PathBuf};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum GenError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {what}")]
    Schema { path: PathBuf, what: String },
    #[error("{0}")]
    Model(String),
}

/// The API files the project uses; their imports are added automatically.
pub const DEFAULT_MODULES: &[&str] = &[
    "memclnt",
    "vpe",
    "vlib",
    "interface",
    "interface_types",
    "ip",
    "ip_types",
    "fib_types",
    "ip_neighbor",
    "npol",
    "cnat",
    "acl",
    "acl_types",
    "af_packet",
    "tapv2",
    "ipip",
    "vxlan",
    "wireguard",
    "tunnel_types",
    "ethernet_types",
];

/// Where the `.api.json` files are when no directory is given: `$VPP_API_DIR`, else
/// `../shared/vpp-api` next to the workspace.
pub fn default_api_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("VPP_API_DIR") {
        return PathBuf::from(d);
    }
    workspace_root().join("../shared/vpp-api")
}

/// The workspace root (parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Where the committed generated code lives.
pub fn default_out_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/gen")
}

/// The VPP version to name in headers: the directory's `VERSION` file if it has one, else
/// what the JSON itself says.
fn vpp_version(dir: &Path, files: &[schema::ApiFile]) -> String {
    if let Ok(s) = std::fs::read_to_string(dir.join("VERSION")) {
        if let Some(line) = s.lines().map(str::trim).find(|l| !l.is_empty()) {
            return line.to_owned();
        }
    }
    let of = |m: &str| {
        files.iter().find(|f| f.module == m).map(|f| {
            format!(
                "{m} {} ({})",
                f.version.as_deref().unwrap_or("?"),
                f.vl_api_version
            )
        })
    };
    let parts: Vec<String> = ["vpe", "memclnt"].iter().filter_map(|m| of(m)).collect();
    format!("unknown (no VERSION file; {})", parts.join(", "))
}

/// Runs all stages: returns (file name, contents) for every generated file.
pub fn generate(api_dir: &Path, modules: &[String]) -> Result<Vec<(String, String)>, GenError> {
    let paths = schema::find_api_files(api_dir)?;
    if paths.is_empty() {
        return Err(GenError::Model(format!(
            "no .api.json files under {}",
            api_dir.display()
        )));
    }
    let mut files = Vec::new();
    for p in paths {
        let text = std::fs::read_to_string(&p).map_err(|e| GenError::Io {
            path: p.clone(),
            source: e,
        })?;
        files.push(schema::parse_file(&p, &text)?);
    }
    let version = vpp_version(api_dir, &files);
    let model = model::build(files, modules, version)?;
    emit::emit(&model)
}

/// Writes generated files into `out`, removing stale `.rs` files there.
pub fn write_files(out: &Path, files: &[(String, String)]) -> Result<(), GenError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e| GenError::Io { path, source: e }
    };
    std::fs::create_dir_all(out).map_err(io(out))?;
    for entry in std::fs::read_dir(out).map_err(io(out))? {
        let p = entry.map_err(io(out))?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.ends_with(".rs") && !files.iter().any(|(n, _)| n == name) {
            std::fs::remove_file(&p).map_err(io(&p))?;
        }
    }
    for (name, text) in files {
        let p = out.join(name);
        std::fs::write(&p, text).map_err(io(&p))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::model::{camel, rust_field_name};
    use super::*;

    fn gen_one(json: &str) -> Result<Vec<(String, String)>, GenError> {
        let dir = tempfile::tempdir().map_err(|e| GenError::Model(e.to_string()))?;
        std::fs::write(dir.path().join("t.api.json"), json).map_err(|e| GenError::Io {
            path: dir.path().to_path_buf(),
            source: e,
        })?;
        generate(dir.path(), &["t".to_owned()])
    }

    #[test]
    fn names_follow_rust_conventions() {
        assert_eq!(camel("npol_rule_create"), "NpolRuleCreate");
        assert_eq!(camel("ADDRESS_IP4"), "AddressIp4");
        assert_eq!(rust_field_name("type"), "type_");
        assert_eq!(rust_field_name("_vl_msg_id"), "vl_msg_id");
        assert_eq!(rust_field_name("sw_if_index"), "sw_if_index");
    }

    const HEAD: &str = r#""module": "t", "vl_api_version": "0x1", "options": {"version": "1.0.0"}, "imports": [], "aliases": {}, "services": {}, "unions": [], "enumflags": []"#;

    #[test]
    fn count_field_becomes_the_length_of_its_vec() {
        let json = format!(
            r#"{{{HEAD}, "enums": [], "types": [],
            "messages": [["m", ["u16", "_vl_msg_id"], ["u32", "context"], ["u8", "n"], ["u32", "xs", 0, "n"], {{"crc": "0x12345678"}}]]}}"#
        );
        let files = gen_one(&json).unwrap();
        let t = &files.iter().find(|(n, _)| n == "t.rs").unwrap().1;
        assert!(t.contains("pub xs: Vec<u32>,"), "{t}");
        assert!(
            !t.contains("pub n:"),
            "count field must not be a struct field"
        );
        assert!(t.contains("const NAME_CRC: &'static str = \"m_12345678\";"));
        assert!(t.contains("const HEADER: HeaderKind = HeaderKind::Reply;"));
    }

    #[test]
    fn array_before_its_count_field_is_refused() {
        let json = format!(
            r#"{{{HEAD}, "enums": [], "types": [],
            "messages": [["m", ["u16", "_vl_msg_id"], ["u32", "xs", 0, "n"], ["u8", "n"], {{"crc": "0x1"}}]]}}"#
        );
        assert!(matches!(gen_one(&json), Err(GenError::Model(_))));
    }

    #[test]
    fn enums_named_flags_become_bit_sets() {
        let json = format!(
            r#"{{{HEAD}, "types": [], "messages": [],
            "enums": [["x_flags", ["X_A", 1], ["X_B", 2], {{"enumtype": "u8"}}],
                      ["color", ["RED", 0], ["BLUE", 1], {{"enumtype": "u32"}}]]}}"#
        );
        let files = gen_one(&json).unwrap();
        let t = &files.iter().find(|(n, _)| n == "t.rs").unwrap().1;
        assert!(t.contains("pub struct XFlags(pub u8);"), "{t}");
        assert!(t.contains("pub const KNOWN_BITS: u8 = 3;"));
        assert!(t.contains("pub enum Color {"));
    }
}
