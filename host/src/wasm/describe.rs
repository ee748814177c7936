//! The shape of a compiled component — its imports and exports with WIT-like signatures — for
//! `codeai inspect`.
//!
//! Types are printed structurally (`record { step: option<string>, message: string }`): a
//! compiled component keeps the structure of its types but not the names WIT gave them.

use std::fmt::Write as _;
use wasmtime::component::types::{ComponentFunc, ComponentItem, Type};
use wasmtime::component::Component;
use wasmtime::Engine;

/// One import or export of a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExternShape {
    /// A function with its signature, `func(input: string) -> result<…>`.
    Func(String),
    /// An instance (an interface) with its functions, `(name, signature)`, in declaration order.
    Instance(Vec<(String, String)>),
    /// Anything else (a module, a component, a type, a resource), by kind.
    Other(&'static str),
}

/// What a component imports and exports, in declaration order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentShape {
    pub imports: Vec<(String, ExternShape)>,
    pub exports: Vec<(String, ExternShape)>,
}

/// Describes the imports and exports of a compiled component.
pub fn describe_component(engine: &Engine, component: &Component) -> ComponentShape {
    let ty = component.component_type();
    let imports = ty
        .imports(engine)
        .map(|(name, item)| (name.to_string(), shape(engine, &item.ty)))
        .collect();
    let exports = ty
        .exports(engine)
        .map(|(name, item)| (name.to_string(), shape(engine, &item.ty)))
        .collect();
    ComponentShape { imports, exports }
}

fn shape(engine: &Engine, item: &ComponentItem) -> ExternShape {
    match item {
        ComponentItem::ComponentFunc(func) => ExternShape::Func(signature(func)),
        ComponentItem::ComponentInstance(instance) => ExternShape::Instance(
            instance
                .exports(engine)
                .filter_map(|(name, item)| match &item.ty {
                    ComponentItem::ComponentFunc(func) => Some((name.to_string(), signature(func))),
                    _ => None,
                })
                .collect(),
        ),
        ComponentItem::CoreFunc(_) => ExternShape::Other("core function"),
        ComponentItem::Module(_) => ExternShape::Other("core module"),
        ComponentItem::Component(_) => ExternShape::Other("component"),
        ComponentItem::Type(_) => ExternShape::Other("type"),
        ComponentItem::Resource(_) => ExternShape::Other("resource"),
    }
}

/// `func(a: T, b: U) -> R`, or without the arrow when there is no result.
pub(crate) fn signature(func: &ComponentFunc) -> String {
    let params: Vec<String> = func
        .params()
        .map(|(name, ty)| format!("{name}: {}", type_name(&ty)))
        .collect();
    let mut out = format!(
        "{}func({})",
        if func.async_() { "async " } else { "" },
        params.join(", ")
    );
    let results: Vec<String> = func.results().map(|ty| type_name(&ty)).collect();
    match results.as_slice() {
        [] => {}
        [one] => {
            let _ = write!(out, " -> {one}");
        }
        many => {
            let _ = write!(out, " -> tuple<{}>", many.join(", "));
        }
    }
    out
}

/// The WIT spelling of a type, with records, variants, enums and flags written out in full.
pub(crate) fn type_name(ty: &Type) -> String {
    match ty {
        Type::Bool => "bool".into(),
        Type::S8 => "s8".into(),
        Type::U8 => "u8".into(),
        Type::S16 => "s16".into(),
        Type::U16 => "u16".into(),
        Type::S32 => "s32".into(),
        Type::U32 => "u32".into(),
        Type::S64 => "s64".into(),
        Type::U64 => "u64".into(),
        Type::Float32 => "f32".into(),
        Type::Float64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::List(list) => format!("list<{}>", type_name(&list.ty())),
        Type::FixedLengthList(list) => format!("list<{}, {}>", type_name(&list.ty()), list.len()),
        Type::Map(map) => format!(
            "map<{}, {}>",
            type_name(&map.key()),
            type_name(&map.value())
        ),
        Type::Record(record) => {
            let fields: Vec<String> = record
                .fields()
                .map(|f| format!("{}: {}", f.name, type_name(&f.ty)))
                .collect();
            format!("record {{ {} }}", fields.join(", "))
        }
        Type::Tuple(tuple) => {
            let types: Vec<String> = tuple.types().map(|t| type_name(&t)).collect();
            format!("tuple<{}>", types.join(", "))
        }
        Type::Variant(variant) => {
            let cases: Vec<String> = variant
                .cases()
                .map(|c| match c.ty {
                    Some(ty) => format!("{}({})", c.name, type_name(&ty)),
                    None => c.name.to_string(),
                })
                .collect();
            format!("variant {{ {} }}", cases.join(", "))
        }
        Type::Enum(e) => format!("enum {{ {} }}", e.names().collect::<Vec<_>>().join(", ")),
        Type::Flags(f) => format!("flags {{ {} }}", f.names().collect::<Vec<_>>().join(", ")),
        Type::Option(option) => format!("option<{}>", type_name(&option.ty())),
        Type::Result(result) => match (result.ok(), result.err()) {
            (Some(ok), Some(err)) => format!("result<{}, {}>", type_name(&ok), type_name(&err)),
            (None, Some(err)) => format!("result<_, {}>", type_name(&err)),
            (Some(ok), None) => format!("result<{}>", type_name(&ok)),
            (None, None) => "result".into(),
        },
        Type::Own(_) => "own<resource>".into(),
        Type::Borrow(_) => "borrow<resource>".into(),
        Type::Future(f) => match f.ty() {
            Some(ty) => format!("future<{}>", type_name(&ty)),
            None => "future".into(),
        },
        Type::Stream(s) => match s.ty() {
            Some(ty) => format!("stream<{}>", type_name(&ty)),
            None => "stream".into(),
        },
        Type::ErrorContext => "error-context".into(),
    }
}
