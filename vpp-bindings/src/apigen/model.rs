//! Stage 2 of the generator: schema structs → a resolved model. Decides which module owns each
//! definition (files repeat what they import), resolves every field's type, finds count
//! fields and computes wire sizes. Emits nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use super::schema::{ApiFile, ArrayKind, EnumDef, StructDef};
use super::GenError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prim {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F64,
    Bool,
}

impl Prim {
    pub fn parse(s: &str) -> Option<Prim> {
        Some(match s {
            "u8" => Prim::U8,
            "i8" => Prim::I8,
            "u16" => Prim::U16,
            "i16" => Prim::I16,
            "u32" => Prim::U32,
            "i32" => Prim::I32,
            "u64" => Prim::U64,
            "i64" => Prim::I64,
            "f64" => Prim::F64,
            "bool" => Prim::Bool,
            _ => return None,
        })
    }
    pub fn rust(self) -> &'static str {
        match self {
            Prim::U8 => "u8",
            Prim::I8 => "i8",
            Prim::U16 => "u16",
            Prim::I16 => "i16",
            Prim::U32 => "u32",
            Prim::I32 => "i32",
            Prim::U64 => "u64",
            Prim::I64 => "i64",
            Prim::F64 => "f64",
            Prim::Bool => "bool",
        }
    }
    pub fn size(self) -> usize {
        match self {
            Prim::U8 | Prim::I8 | Prim::Bool => 1,
            Prim::U16 | Prim::I16 => 2,
            Prim::U32 | Prim::I32 => 4,
            Prim::U64 | Prim::I64 | Prim::F64 => 8,
        }
    }
    fn is_unsigned_int(self) -> bool {
        matches!(self, Prim::U8 | Prim::U16 | Prim::U32 | Prim::U64)
    }
    fn is_int(self) -> bool {
        !matches!(self, Prim::F64 | Prim::Bool)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefKind {
    Struct,
    Union,
    Enum,
    Flags,
    Alias,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeRef {
    Prim(Prim),
    Named {
        module: String,
        name: String,
        rust: String,
        kind: DefKind,
    },
}

#[derive(Debug, Clone)]
pub enum Shape {
    Scalar(TypeRef),
    FixedArray(TypeRef, usize),
    FixedString(usize),
    VarString {
        limit: Option<usize>,
    },
    VarArray {
        elem: TypeRef,
        count_field: String,
    },
    /// A count field: not a Rust field; written from the length of `array`.
    Count {
        prim: Prim,
        array: String,
    },
}

#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub rust: String,
    pub shape: Shape,
    pub default: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    Request,
    Reply,
    Event,
    Bare,
}

#[derive(Debug, Clone)]
pub struct Struct {
    pub name: String,
    pub rust: String,
    pub fields: Vec<Field>,
    /// Messages only.
    pub crc: Option<String>,
    pub header: Option<Header>,
}

#[derive(Debug, Clone)]
pub struct UnionMember {
    pub name: String,
    pub rust: String,
    pub ty: TypeRef,
}

#[derive(Debug, Clone)]
pub struct Union {
    pub name: String,
    pub rust: String,
    pub size: usize,
    pub members: Vec<UnionMember>,
}

#[derive(Debug, Clone)]
pub struct Enum {
    pub name: String,
    pub rust: String,
    pub base: Prim,
    pub flags: bool,
    /// (api name, rust variant, value)
    pub values: Vec<(String, String, i64)>,
}

#[derive(Debug, Clone)]
pub struct Alias {
    pub name: String,
    pub rust: String,
    pub target: TypeRef,
    pub length: Option<usize>,
}

#[derive(Debug, Clone)]
pub enum ServiceKind {
    Reply(String),
    Dump(String),
    Subscribe { reply: String, event: String },
}

#[derive(Debug, Clone)]
pub struct Module {
    pub name: String,
    pub file_name: String,
    pub vl_api_version: String,
    pub version: Option<String>,
    pub aliases: Vec<Alias>,
    pub enums: Vec<Enum>,
    pub unions: Vec<Union>,
    pub types: Vec<Struct>,
    pub messages: Vec<Struct>,
    /// request message name → what answers it
    pub services: BTreeMap<String, ServiceKind>,
}

#[derive(Debug, Clone)]
pub struct Model {
    pub vpp_version: String,
    /// memclnt first (it owns ids 1.. on a VPP), then by name.
    pub modules: Vec<Module>,
    /// Facts about every named type, by bare name.
    pub props: HashMap<String, TypeProps>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct TypeProps {
    pub fixed_size: Option<usize>,
    pub min_size: usize,
    pub copy: bool,
    pub eq: bool,
}

/// `vl_api_foo_bar_t` → `foo_bar`.
pub fn bare(ty: &str) -> &str {
    ty.strip_prefix("vl_api_")
        .and_then(|t| t.strip_suffix("_t"))
        .unwrap_or(ty)
}

pub fn camel(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for part in s.split('_').filter(|p| !p.is_empty()) {
        let mut cs = part.chars();
        if let Some(c) = cs.next() {
            out.extend(c.to_uppercase());
            out.extend(cs.flat_map(char::to_lowercase));
        }
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'V');
    }
    out
}

const RESERVED_TYPES: &[&str] = &[
    "String",
    "Vec",
    "Option",
    "Result",
    "Box",
    "Default",
    "Some",
    "None",
    "Ok",
    "Err",
    "Self",
    "Reader",
    "Writer",
    "Encode",
    "Decode",
    "Message",
    "HeaderKind",
    "MessageInfo",
];

pub fn rust_type_name(bare_name: &str) -> String {
    let c = camel(bare_name);
    if RESERVED_TYPES.contains(&c.as_str()) {
        format!("{c}Type")
    } else {
        c
    }
}

const KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for",
    "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return",
    "self", "Self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where",
    "while", "async", "await", "dyn", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
];

/// Field names keep VPP's spelling; a Rust keyword gets a trailing underscore (`type_`).
pub fn rust_field_name(name: &str) -> String {
    let n = name.trim_start_matches('_');
    let n = if n.is_empty() { "field" } else { n };
    if KEYWORDS.contains(&n) || n.starts_with(|c: char| c.is_ascii_digit()) {
        format!("{n}_")
    } else {
        n.to_owned()
    }
}

struct Resolver<'a> {
    /// bare name → home module
    home: HashMap<String, String>,
    files: &'a HashMap<String, ApiFile>,
}

impl Resolver<'_> {
    fn kind_in(&self, module: &str, name: &str) -> Option<DefKind> {
        let f = self.files.get(module)?;
        if f.types.iter().any(|t| t.name == name) {
            Some(DefKind::Struct)
        } else if f.unions.iter().any(|t| t.name == name) {
            Some(DefKind::Union)
        } else if let Some(e) = f.enums.iter().find(|t| t.name == name) {
            Some(if is_flags(e) {
                DefKind::Flags
            } else {
                DefKind::Enum
            })
        } else if f.aliases.iter().any(|t| t.name == name) {
            Some(DefKind::Alias)
        } else {
            None
        }
    }

    fn resolve(&self, owner: &str, ty: &str) -> Result<TypeRef, GenError> {
        if let Some(p) = Prim::parse(ty) {
            return Ok(TypeRef::Prim(p));
        }
        let name = bare(ty);
        let module = self
            .home
            .get(name)
            .ok_or_else(|| GenError::Model(format!("{owner}: unknown type {ty}")))?;
        let kind = self
            .kind_in(module, name)
            .ok_or_else(|| GenError::Model(format!("{owner}: type {ty} not found in {module}")))?;
        Ok(TypeRef::Named {
            module: module.clone(),
            name: name.to_owned(),
            rust: rust_type_name(name),
            kind,
        })
    }
}

/// An `enum` whose name ends in `_flags` is used by VPP as a bit set (VPP sends e.g.
/// ADMIN_UP|LINK_UP), so it is treated like a declared `enumflag`.
pub fn is_flags(e: &EnumDef) -> bool {
    e.declared_flags || e.name.ends_with("_flags")
}

fn names_of(f: &ApiFile) -> BTreeSet<String> {
    let mut s = BTreeSet::new();
    s.extend(f.types.iter().map(|t| t.name.clone()));
    s.extend(f.unions.iter().map(|t| t.name.clone()));
    s.extend(f.enums.iter().map(|t| t.name.clone()));
    s.extend(f.aliases.iter().map(|t| t.name.clone()));
    s
}

fn import_closure(files: &HashMap<String, ApiFile>, m: &str) -> Result<BTreeSet<String>, GenError> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<String> = files.get(m).map(|f| f.imports.clone()).unwrap_or_default();
    while let Some(i) = todo.pop() {
        if i == m || !seen.insert(i.clone()) {
            continue;
        }
        let f = files.get(&i).ok_or_else(|| {
            GenError::Model(format!(
                "{m} imports {i}, which is not in the API directory"
            ))
        })?;
        todo.extend(f.imports.iter().cloned());
    }
    Ok(seen)
}

/// Resolves the requested modules and everything they import.
pub fn build(all: Vec<ApiFile>, wanted: &[String], vpp_version: String) -> Result<Model, GenError> {
    let mut files: HashMap<String, ApiFile> = HashMap::new();
    for f in all {
        files.entry(f.module.clone()).or_insert(f);
    }
    let mut selected = BTreeSet::new();
    for w in wanted {
        if !files.contains_key(w) {
            return Err(GenError::Model(format!(
                "module {w} not found in the API directory"
            )));
        }
        selected.insert(w.clone());
        selected.extend(import_closure(&files, w)?);
    }

    // Which module owns each name: the one whose imports do not already provide it.
    let mut home: HashMap<String, String> = HashMap::new();
    let mut own: HashMap<String, BTreeSet<String>> = HashMap::new();
    for m in &selected {
        let mut provided = BTreeSet::new();
        for i in import_closure(&files, m)? {
            provided.extend(names_of(&files[&i]));
        }
        let mine: BTreeSet<String> = names_of(&files[m])
            .into_iter()
            .filter(|n| !provided.contains(n))
            .collect();
        for n in &mine {
            if let Some(other) = home.insert(n.clone(), m.clone()) {
                return Err(GenError::Model(format!(
                    "type {n} is defined by both {other} and {m}"
                )));
            }
        }
        own.insert(m.clone(), mine);
    }
    let resolver = Resolver {
        home,
        files: &files,
    };

    let mut modules = Vec::new();
    for m in &selected {
        modules.push(build_module(&resolver, &files[m], &own[m], &files, m)?);
    }
    modules.sort_by(|a, b| (a.name != "memclnt", &a.name).cmp(&(b.name != "memclnt", &b.name)));
    let mut model = Model {
        vpp_version,
        modules,
        props: HashMap::new(),
    };
    compute_props(&mut model)?;
    check_unions(&model)?;
    Ok(model)
}

fn build_struct(
    r: &Resolver<'_>,
    module: &str,
    s: &StructDef,
    is_message: bool,
) -> Result<Struct, GenError> {
    let owner = format!("{module}.{}", s.name);
    let mut fields = Vec::new();
    let mut header = None;
    let mut rest: &[_] = &s.fields;
    if is_message {
        let names: Vec<&str> = s.fields.iter().take(3).map(|f| f.name.as_str()).collect();
        let (h, skip) = match names.as_slice() {
            ["_vl_msg_id", "client_index", "context", ..] => (Header::Request, 3),
            ["_vl_msg_id", "context", ..] => (Header::Reply, 2),
            ["_vl_msg_id", "client_index", ..] => (Header::Event, 2),
            ["_vl_msg_id", ..] => (Header::Bare, 1),
            _ => return Err(GenError::Model(format!("{owner}: no _vl_msg_id"))),
        };
        header = Some(h);
        rest = &s.fields[skip..];
    }
    // count field name → array field name
    let mut counts: HashMap<&str, &str> = HashMap::new();
    for f in rest {
        if let ArrayKind::Var(Some(c)) = &f.array {
            if counts.insert(c.as_str(), f.name.as_str()).is_some() {
                return Err(GenError::Model(format!(
                    "{owner}: count field {c} is shared by two arrays"
                )));
            }
        }
    }
    let mut seen = BTreeSet::new();
    for f in rest {
        let ctx = format!("{owner}.{}", f.name);
        let shape = if let Some(arr) = counts.get(f.name.as_str()) {
            let prim = match (&f.array, r.resolve(&ctx, &f.ty)?) {
                (ArrayKind::None, TypeRef::Prim(p)) if p.is_unsigned_int() => p,
                _ => {
                    return Err(GenError::Model(format!(
                        "{ctx}: count field must be an unsigned integer"
                    )))
                }
            };
            Shape::Count {
                prim,
                array: (*arr).to_owned(),
            }
        } else if f.ty == "string" {
            match &f.array {
                ArrayKind::Fixed(n) => Shape::FixedString(*n),
                ArrayKind::Var(None) => Shape::VarString { limit: f.limit },
                _ => return Err(GenError::Model(format!("{ctx}: unsupported string form"))),
            }
        } else {
            let t = r.resolve(&ctx, &f.ty)?;
            match &f.array {
                ArrayKind::None => Shape::Scalar(t),
                ArrayKind::Fixed(n) => Shape::FixedArray(t, *n),
                ArrayKind::Var(Some(c)) => {
                    if !seen.contains(c.as_str()) {
                        return Err(GenError::Model(format!(
                            "{ctx}: count field {c} must come before the array"
                        )));
                    }
                    Shape::VarArray {
                        elem: t,
                        count_field: c.clone(),
                    }
                }
                ArrayKind::Var(None) => {
                    return Err(GenError::Model(format!(
                        "{ctx}: arrays without a count field are not supported"
                    )))
                }
            }
        };
        seen.insert(f.name.as_str());
        fields.push(Field {
            name: f.name.clone(),
            rust: rust_field_name(&f.name),
            shape,
            default: f.default.clone(),
        });
    }
    let rust = if is_message {
        camel(&s.name)
    } else {
        rust_type_name(&s.name)
    };
    if is_message && s.crc.is_none() {
        return Err(GenError::Model(format!("{owner}: message without crc")));
    }
    Ok(Struct {
        name: s.name.clone(),
        rust,
        fields,
        crc: s.crc.clone(),
        header,
    })
}

fn build_module(
    r: &Resolver<'_>,
    f: &ApiFile,
    own: &BTreeSet<String>,
    files: &HashMap<String, ApiFile>,
    m: &str,
) -> Result<Module, GenError> {
    let mut aliases = Vec::new();
    for a in f.aliases.iter().filter(|a| own.contains(&a.name)) {
        aliases.push(Alias {
            name: a.name.clone(),
            rust: rust_type_name(&a.name),
            target: r.resolve(&format!("{m}.{}", a.name), &a.ty)?,
            length: a.length,
        });
    }
    let mut enums = Vec::new();
    for e in f.enums.iter().filter(|e| own.contains(&e.name)) {
        let base = Prim::parse(&e.base)
            .filter(|p| p.is_int())
            .ok_or_else(|| GenError::Model(format!("{m}.{}: bad enumtype", e.name)))?;
        let mut values = Vec::new();
        let mut variants = BTreeSet::new();
        let mut vals = BTreeSet::new();
        for (n, v) in &e.values {
            let variant = camel(n);
            if !variants.insert(variant.clone()) || (!is_flags(e) && !vals.insert(*v)) {
                return Err(GenError::Model(format!(
                    "{m}.{}: duplicate enum entry {n}",
                    e.name
                )));
            }
            values.push((n.clone(), variant, *v));
        }
        enums.push(Enum {
            name: e.name.clone(),
            rust: rust_type_name(&e.name),
            base,
            flags: is_flags(e),
            values,
        });
    }
    let mut unions = Vec::new();
    for u in f.unions.iter().filter(|u| own.contains(&u.name)) {
        let mut members = Vec::new();
        for fd in &u.fields {
            if fd.array != ArrayKind::None {
                return Err(GenError::Model(format!("{m}.{}: array in union", u.name)));
            }
            members.push(UnionMember {
                name: fd.name.clone(),
                rust: rust_field_name(&fd.name),
                ty: r.resolve(&format!("{m}.{}", u.name), &fd.ty)?,
            });
        }
        unions.push(Union {
            name: u.name.clone(),
            rust: rust_type_name(&u.name),
            size: 0,
            members,
        });
    }
    let mut types = Vec::new();
    for t in f.types.iter().filter(|t| own.contains(&t.name)) {
        types.push(build_struct(r, m, t, false)?);
    }
    // Messages of imported files are not repeated in JSON, but be safe.
    let mut imported_msgs = BTreeSet::new();
    for i in import_closure(files, m)? {
        imported_msgs.extend(files[&i].messages.iter().map(|x| x.name.clone()));
    }
    let mut messages = Vec::new();
    for s in f
        .messages
        .iter()
        .filter(|s| !imported_msgs.contains(&s.name))
    {
        messages.push(build_struct(r, m, s, true)?);
    }
    let mut rust_names = BTreeSet::new();
    for n in aliases
        .iter()
        .map(|a| &a.rust)
        .chain(enums.iter().map(|e| &e.rust))
        .chain(unions.iter().map(|u| &u.rust))
        .chain(types.iter().map(|t| &t.rust))
        .chain(messages.iter().map(|t| &t.rust))
    {
        if !rust_names.insert(n.clone()) {
            return Err(GenError::Model(format!("{m}: two definitions named {n}")));
        }
    }
    let msg_names: BTreeSet<&str> = messages.iter().map(|x| x.name.as_str()).collect();
    let header_of = |n: &str| messages.iter().find(|x| x.name == n).and_then(|x| x.header);
    let mut services = BTreeMap::new();
    for (req, s) in &f.services {
        if !msg_names.contains(req.as_str())
            || !msg_names.contains(s.reply.as_str())
            || header_of(req) != Some(Header::Request)
        {
            continue;
        }
        let kind = if s.stream {
            if s.stream_msg.is_some() {
                // A cursor-style get (details, then a reply): not modelled yet.
                continue;
            }
            ServiceKind::Dump(s.reply.clone())
        } else if s.events.len() == 1 && msg_names.contains(s.events[0].as_str()) {
            ServiceKind::Subscribe {
                reply: s.reply.clone(),
                event: s.events[0].clone(),
            }
        } else {
            ServiceKind::Reply(s.reply.clone())
        };
        services.insert(req.clone(), kind);
    }
    let file_name = f
        .path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned();
    Ok(Module {
        name: m.to_owned(),
        file_name,
        vl_api_version: f.vl_api_version.clone(),
        version: f.version.clone(),
        aliases,
        enums,
        unions,
        types,
        messages,
        services,
    })
}

fn ref_props(model: &Model, t: &TypeRef) -> Option<TypeProps> {
    match t {
        TypeRef::Prim(p) => Some(TypeProps {
            fixed_size: Some(p.size()),
            min_size: p.size(),
            copy: true,
            eq: *p != Prim::F64,
        }),
        TypeRef::Named { name, .. } => model.props.get(name).copied(),
    }
}

fn struct_props(model: &Model, s: &Struct) -> Option<TypeProps> {
    let mut p = TypeProps {
        fixed_size: Some(0),
        min_size: 0,
        copy: true,
        eq: true,
    };
    for f in &s.fields {
        let (fixed, min, copy, eq) = match &f.shape {
            Shape::Scalar(t) => {
                let tp = ref_props(model, t)?;
                (tp.fixed_size, tp.min_size, tp.copy, tp.eq)
            }
            Shape::FixedArray(t, n) => {
                let tp = ref_props(model, t)?;
                (
                    tp.fixed_size.map(|s| s * n),
                    tp.min_size * n,
                    tp.copy,
                    tp.eq,
                )
            }
            Shape::FixedString(n) => (Some(*n), *n, false, true),
            Shape::VarString { .. } => (None, 4, false, true),
            Shape::VarArray { elem, .. } => {
                let tp = ref_props(model, elem)?;
                (None, 0, false, tp.eq)
            }
            Shape::Count { prim, .. } => (Some(prim.size()), prim.size(), true, true),
        };
        p.fixed_size = match (p.fixed_size, fixed) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
        p.min_size += min;
        p.copy &= copy;
        p.eq &= eq;
    }
    Some(p)
}

/// Computes sizes and derivable traits; definitions may refer to later ones, so iterate until
/// nothing changes.
fn compute_props(model: &mut Model) -> Result<(), GenError> {
    let total: usize = model
        .modules
        .iter()
        .map(|m| m.aliases.len() + m.enums.len() + m.unions.len() + m.types.len())
        .sum();
    for _ in 0..=total {
        let mut changed = false;
        let mut new = Vec::new();
        for m in &model.modules {
            for e in &m.enums {
                if !model.props.contains_key(&e.name) {
                    let s = e.base.size();
                    new.push((
                        e.name.clone(),
                        TypeProps {
                            fixed_size: Some(s),
                            min_size: s,
                            copy: true,
                            eq: true,
                        },
                    ));
                }
            }
            for a in &m.aliases {
                if model.props.contains_key(&a.name) {
                    continue;
                }
                if let Some(tp) = ref_props(model, &a.target) {
                    let n = a.length.unwrap_or(1);
                    new.push((
                        a.name.clone(),
                        TypeProps {
                            fixed_size: tp.fixed_size.map(|s| s * n),
                            min_size: tp.min_size * n,
                            ..tp
                        },
                    ));
                }
            }
            for u in &m.unions {
                if model.props.contains_key(&u.name) {
                    continue;
                }
                let ps: Option<Vec<TypeProps>> =
                    u.members.iter().map(|x| ref_props(model, &x.ty)).collect();
                if let Some(ps) = ps {
                    let size = ps
                        .iter()
                        .map(|p| p.fixed_size)
                        .try_fold(0usize, |acc, s| s.map(|s| acc.max(s)));
                    let size = size.ok_or_else(|| {
                        GenError::Model(format!("union {} has a variable-size member", u.name))
                    })?;
                    new.push((
                        u.name.clone(),
                        TypeProps {
                            fixed_size: Some(size),
                            min_size: size,
                            copy: true,
                            eq: true,
                        },
                    ));
                }
            }
            for t in &m.types {
                if model.props.contains_key(&t.name) {
                    continue;
                }
                if let Some(p) = struct_props(model, t) {
                    new.push((t.name.clone(), p));
                }
            }
        }
        for (k, v) in new {
            changed = true;
            model.props.insert(k, v);
        }
        if !changed {
            break;
        }
    }
    for m in &model.modules {
        for t in &m.types {
            if !model.props.contains_key(&t.name) {
                return Err(GenError::Model(format!(
                    "type {} is recursive or unresolved",
                    t.name
                )));
            }
        }
        for t in &m.messages {
            if struct_props(model, t).is_none() {
                return Err(GenError::Model(format!("message {} is unresolved", t.name)));
            }
        }
    }
    let mut sizes = Vec::new();
    for (mi, m) in model.modules.iter().enumerate() {
        for (ui, u) in m.unions.iter().enumerate() {
            sizes.push((mi, ui, model.props[&u.name].min_size));
        }
    }
    for (mi, ui, s) in sizes {
        model.modules[mi].unions[ui].size = s;
    }
    Ok(())
}

fn check_unions(model: &Model) -> Result<(), GenError> {
    for m in &model.modules {
        for u in &m.unions {
            if u.size == 0 {
                return Err(GenError::Model(format!("union {} is empty", u.name)));
            }
        }
    }
    Ok(())
}

/// Props of a message struct (never stored: messages are not types).
pub fn message_props(model: &Model, s: &Struct) -> TypeProps {
    struct_props(model, s).unwrap_or_default()
}

pub fn props_of(model: &Model, t: &TypeRef) -> TypeProps {
    ref_props(model, t).unwrap_or_default()
}
