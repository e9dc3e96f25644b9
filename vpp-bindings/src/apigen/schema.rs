//! Stage 1 of the generator: `.api.json` text → plain schema structs, one per file, exactly as
//! written (imported definitions included). No cross-file resolution happens here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::GenError;

#[derive(Debug, Clone, PartialEq)]
pub enum ArrayKind {
    None,
    Fixed(usize),
    /// `T name[count_field]`, or `T name[]` when the count field is absent (legacy).
    Var(Option<String>),
}

#[derive(Debug, Clone)]
pub struct FieldDef {
    pub ty: String,
    pub name: String,
    pub array: ArrayKind,
    pub default: Option<Value>,
    pub limit: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct StructDef {
    pub name: String,
    pub fields: Vec<FieldDef>,
    pub crc: Option<String>,
}

#[derive(Debug, Clone)]
pub struct EnumDef {
    pub name: String,
    pub base: String,
    pub values: Vec<(String, i64)>,
    /// Declared `enumflag`.
    pub declared_flags: bool,
}

#[derive(Debug, Clone)]
pub struct AliasDef {
    pub name: String,
    pub ty: String,
    pub length: Option<usize>,
}

#[derive(Debug, Clone, Default)]
pub struct ServiceDef {
    pub reply: String,
    pub stream: bool,
    pub stream_msg: Option<String>,
    pub events: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ApiFile {
    pub path: PathBuf,
    pub module: String,
    pub vl_api_version: String,
    pub version: Option<String>,
    /// Module names (file stems) this file imports.
    pub imports: Vec<String>,
    pub types: Vec<StructDef>,
    pub messages: Vec<StructDef>,
    pub unions: Vec<StructDef>,
    pub enums: Vec<EnumDef>,
    pub aliases: Vec<AliasDef>,
    pub services: BTreeMap<String, ServiceDef>,
}

fn bad(path: &Path, what: impl Into<String>) -> GenError {
    GenError::Schema {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

fn as_str<'a>(path: &Path, v: &'a Value, ctx: &str) -> Result<&'a str, GenError> {
    v.as_str()
        .ok_or_else(|| bad(path, format!("{ctx}: expected a string, got {v}")))
}

fn as_array<'a>(path: &Path, v: &'a Value, ctx: &str) -> Result<&'a Vec<Value>, GenError> {
    v.as_array()
        .ok_or_else(|| bad(path, format!("{ctx}: expected an array")))
}

/// Module name of an import path such as `vnet/ip/ip_types.api`.
pub fn module_of_import(import: &str) -> String {
    let base = import.rsplit('/').next().unwrap_or(import);
    base.strip_suffix(".api").unwrap_or(base).to_owned()
}

fn parse_field(path: &Path, owner: &str, v: &Value) -> Result<FieldDef, GenError> {
    let ctx = format!("field of {owner}");
    let parts = as_array(path, v, &ctx)?;
    let mut positional = Vec::new();
    let mut opts = None;
    for p in parts {
        match p {
            Value::Object(o) => opts = Some(o),
            other => positional.push(other),
        }
    }
    if positional.len() < 2 {
        return Err(bad(path, format!("{ctx}: too few elements")));
    }
    let ty = as_str(path, positional[0], &ctx)?.to_owned();
    let name = as_str(path, positional[1], &ctx)?.to_owned();
    let array = match positional.len() {
        2 => ArrayKind::None,
        3 | 4 => {
            let n = positional[2]
                .as_u64()
                .ok_or_else(|| bad(path, format!("{ctx} {name}: bad array length")))?;
            if n == 0 {
                let count = match positional.get(3) {
                    Some(c) => Some(as_str(path, c, &ctx)?.to_owned()),
                    None => None,
                };
                ArrayKind::Var(count)
            } else {
                let n = usize::try_from(n).map_err(|_| bad(path, "array too long"))?;
                ArrayKind::Fixed(n)
            }
        }
        _ => return Err(bad(path, format!("{ctx} {name}: too many elements"))),
    };
    let default = opts.and_then(|o| o.get("default").cloned());
    let limit = opts
        .and_then(|o| o.get("limit"))
        .and_then(Value::as_u64)
        .and_then(|l| usize::try_from(l).ok());
    Ok(FieldDef {
        ty,
        name,
        array,
        default,
        limit,
    })
}

fn parse_struct(path: &Path, v: &Value) -> Result<StructDef, GenError> {
    let parts = as_array(path, v, "type/message")?;
    let name = as_str(path, parts.first().unwrap_or(&Value::Null), "type name")?.to_owned();
    let mut fields = Vec::new();
    let mut crc = None;
    for p in parts.iter().skip(1) {
        match p {
            Value::Object(o) => {
                if let Some(c) = o.get("crc").and_then(Value::as_str) {
                    crc = Some(c.to_owned());
                }
            }
            Value::Array(_) => fields.push(parse_field(path, &name, p)?),
            _ => return Err(bad(path, format!("{name}: unexpected element {p}"))),
        }
    }
    Ok(StructDef { name, fields, crc })
}

fn parse_enum(path: &Path, v: &Value, declared_flags: bool) -> Result<EnumDef, GenError> {
    let parts = as_array(path, v, "enum")?;
    let name = as_str(path, parts.first().unwrap_or(&Value::Null), "enum name")?.to_owned();
    let mut base = "u32".to_owned();
    let mut values = Vec::new();
    for p in parts.iter().skip(1) {
        match p {
            Value::Object(o) => {
                if let Some(t) = o.get("enumtype").and_then(Value::as_str) {
                    base = t.to_owned();
                }
            }
            Value::Array(a) if a.len() == 2 => {
                let n = as_str(path, &a[0], &name)?.to_owned();
                let val = a[1]
                    .as_i64()
                    .ok_or_else(|| bad(path, format!("{name}.{n}: value is not an integer")))?;
                values.push((n, val));
            }
            _ => return Err(bad(path, format!("{name}: unexpected element {p}"))),
        }
    }
    Ok(EnumDef {
        name,
        base,
        values,
        declared_flags,
    })
}

/// Parses one `.api.json` document.
pub fn parse_file(path: &Path, text: &str) -> Result<ApiFile, GenError> {
    let doc: Value = serde_json::from_str(text).map_err(|e| bad(path, e.to_string()))?;
    let stem = path
        .file_name()
        .and_then(|s| s.to_str())
        .and_then(|s| s.strip_suffix(".api.json"))
        .unwrap_or_default()
        .to_owned();
    let module = doc
        .get("module")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or(stem);
    let list = |key: &str| -> Vec<Value> {
        doc.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let mut imports = Vec::new();
    for i in list("imports") {
        let m = module_of_import(as_str(path, &i, "import")?);
        if !imports.contains(&m) {
            imports.push(m);
        }
    }
    let types = list("types")
        .iter()
        .map(|v| parse_struct(path, v))
        .collect::<Result<_, _>>()?;
    let messages = list("messages")
        .iter()
        .map(|v| parse_struct(path, v))
        .collect::<Result<_, _>>()?;
    let unions = list("unions")
        .iter()
        .map(|v| parse_struct(path, v))
        .collect::<Result<_, _>>()?;
    let mut enums: Vec<EnumDef> = list("enums")
        .iter()
        .map(|v| parse_enum(path, v, false))
        .collect::<Result<_, _>>()?;
    for v in list("enumflags") {
        enums.push(parse_enum(path, &v, true)?);
    }
    let mut aliases = Vec::new();
    if let Some(obj) = doc.get("aliases").and_then(Value::as_object) {
        for (name, a) in obj {
            let ty = a
                .get("type")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(path, format!("alias {name}: no type")))?
                .to_owned();
            let length = a
                .get("length")
                .and_then(Value::as_u64)
                .and_then(|l| usize::try_from(l).ok());
            aliases.push(AliasDef {
                name: name.clone(),
                ty,
                length,
            });
        }
    }
    let mut services = BTreeMap::new();
    if let Some(obj) = doc.get("services").and_then(Value::as_object) {
        for (name, s) in obj {
            let reply = s
                .get("reply")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let events = s
                .get("events")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            services.insert(
                name.clone(),
                ServiceDef {
                    reply,
                    stream: s.get("stream").and_then(Value::as_bool).unwrap_or(false),
                    stream_msg: s
                        .get("stream_msg")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    events,
                },
            );
        }
    }
    let vl_api_version = doc
        .get("vl_api_version")
        .and_then(Value::as_str)
        .unwrap_or("0x0")
        .to_owned();
    let version = doc
        .get("options")
        .and_then(|o| o.get("version"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(ApiFile {
        path: path.to_path_buf(),
        module,
        vl_api_version,
        version,
        imports,
        types,
        messages,
        unions,
        enums,
        aliases,
        services,
    })
}

/// Finds every `*.api.json` under `dir` (flat, or VPP's `core/` and `plugins/` layout),
/// sorted by path so runs are reproducible.
pub fn find_api_files(dir: &Path) -> Result<Vec<PathBuf>, GenError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = std::fs::read_dir(&d).map_err(|e| GenError::Io {
            path: d.clone(),
            source: e,
        })?;
        for entry in rd {
            let entry = entry.map_err(|e| GenError::Io {
                path: d.clone(),
                source: e,
            })?;
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".api.json"))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}
