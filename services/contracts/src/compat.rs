//! Whether one JSON Schema of a message can stand in for another, judged both ways as Schema
//! Registry's FULL mode does: a consumer built on the old schema still reads messages of the
//! new one, and code built on the new schema still replays messages stored under the old one.
//!
//! The schemas compared are the ones schemars generates from the contract types, so only the
//! shapes it writes are understood: objects with `properties` and `required`, arrays with
//! `items`, scalars with a `format`, `enum` / `const` values, `anyOf` / `oneOf` unions (an
//! `Option` is a union with `null`) and `$ref`s into `$defs`. Descriptions and defaults do not
//! change what a reader accepts, so they are ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;

/// One way a new schema breaks readers of the old one, or the old messages for new readers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Break {
    /// The field's path from the message's root: `address.country`, `lines[].sku`.
    pub field: String,
    pub rule: Rule,
}

/// The compatibility rule a change breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Old consumers miss a field they read; a rename is a removal plus an addition.
    FieldRemoved,
    /// The field's JSON type (or its format, or whether it may be null) is not the same.
    TypeChanged { was: String, now: String },
    /// New code replaying old messages finds no value and has no default.
    RequiredWithoutDefault,
    /// New code replaying old messages meets a value it no longer knows.
    EnumValueRemoved { value: String },
    /// Old consumers reading new messages meet a value they do not know.
    EnumValueAdded { value: String },
    /// The old type refuses unknown fields, so its consumers refuse the new messages.
    FieldAddedToClosedType,
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = &self.field;
        match &self.rule {
            Rule::FieldRemoved => write!(f, "`{field}`: field removed or renamed (old consumers read it)"),
            Rule::TypeChanged { was, now } => write!(f, "`{field}`: type changed from {was} to {now}"),
            Rule::RequiredWithoutDefault => {
                write!(f, "`{field}`: new required field without a default (old messages lack it on replay)")
            }
            Rule::EnumValueRemoved { value } => write!(
                f,
                "`{field}`: enum value {value} removed (new code cannot replay old messages holding it)"
            ),
            Rule::EnumValueAdded { value } => write!(
                f,
                "`{field}`: enum value {value} added (old consumers cannot read new messages holding it)"
            ),
            Rule::FieldAddedToClosedType => write!(
                f,
                "`{field}`: field added to a type that refuses unknown fields (old consumers reject it)"
            ),
        }
    }
}

/// Every way `new` breaks compatibility with `old` in either direction; empty when a message
/// of either schema can be read by code built on the other.
pub fn compare(old: &Value, new: &Value) -> Vec<Break> {
    let mut breaks = Vec::new();
    let (old_shape, new_shape) = (Shape::of(old, old, 0), Shape::of(new, new, 0));
    compare_shapes(&old_shape, &new_shape, "", &mut breaks);
    breaks
}

/// Whether `value` is a message the schema describes, as far as this model of it goes: types,
/// formats of integers, required fields, closed objects and enum values. `Err` names the first
/// field that is not.
pub fn conforms(schema: &Value, value: &Value) -> Result<(), String> {
    Shape::of(schema, schema, 0).accepts(value, "")
}

/// What a schema node says a value is, with `$ref`s resolved and unions merged.
#[derive(Clone, Debug, Default, PartialEq)]
struct Shape {
    /// JSON types (`object`, `string`, `integer`, `null`, …); empty means anything.
    kinds: BTreeSet<String>,
    format: Option<String>,
    properties: BTreeMap<String, Shape>,
    required: BTreeSet<String>,
    /// `additionalProperties: false`.
    closed: bool,
    items: Option<Box<Shape>>,
    /// The allowed values, as JSON text, when the node is an enumeration.
    values: Option<BTreeSet<String>>,
}

/// Deeper than any contract nests; stops a self-referring schema from looping.
const MAX_DEPTH: usize = 32;

impl Shape {
    fn of(node: &Value, root: &Value, depth: usize) -> Shape {
        if depth > MAX_DEPTH {
            return Shape::default();
        }
        if let Some(target) = node.get("$ref").and_then(Value::as_str) {
            return resolve(root, target).map_or_else(Shape::default, |n| Shape::of(n, root, depth + 1));
        }
        let mut shape = Shape::default();
        match node.get("type") {
            Some(Value::String(kind)) => {
                shape.kinds.insert(kind.clone());
            }
            Some(Value::Array(kinds)) => {
                shape.kinds.extend(kinds.iter().filter_map(Value::as_str).map(str::to_owned));
            }
            _ => {}
        }
        shape.format = node.get("format").and_then(Value::as_str).map(str::to_owned);
        if let Some(values) = node.get("enum").and_then(Value::as_array) {
            shape.values = Some(values.iter().map(Value::to_string).collect());
        }
        if let Some(value) = node.get("const") {
            shape.values = Some(BTreeSet::from([value.to_string()]));
        }
        if let Some(properties) = node.get("properties").and_then(Value::as_object) {
            for (name, property) in properties {
                shape.properties.insert(name.clone(), Shape::of(property, root, depth + 1));
            }
            shape.kinds.insert("object".to_owned());
        }
        if let Some(required) = node.get("required").and_then(Value::as_array) {
            shape.required.extend(required.iter().filter_map(Value::as_str).map(str::to_owned));
        }
        shape.closed = node.get("additionalProperties") == Some(&Value::Bool(false));
        if let Some(items) = node.get("items") {
            shape.items = Some(Box::new(Shape::of(items, root, depth + 1)));
        }
        for union in ["anyOf", "oneOf"] {
            if let Some(members) = node.get(union).and_then(Value::as_array) {
                let members: Vec<Shape> = members.iter().map(|m| Shape::of(m, root, depth + 1)).collect();
                shape.merge_union(&members);
            }
        }
        shape
    }

    /// A union accepts what any member accepts. Its values are an enumeration only when every
    /// member that is not `null` is one.
    fn merge_union(&mut self, members: &[Shape]) {
        let enumerated = members.iter().filter(|m| !m.is_null()).all(|m| m.values.is_some());
        for member in members {
            self.kinds.extend(member.kinds.iter().cloned());
            if self.format.is_none() {
                self.format.clone_from(&member.format);
            }
            for (name, property) in &member.properties {
                self.properties.entry(name.clone()).or_insert_with(|| property.clone());
            }
            self.required.extend(member.required.iter().cloned());
            self.closed |= member.closed;
            if self.items.is_none() {
                self.items.clone_from(&member.items);
            }
            if enumerated && let Some(values) = &member.values {
                self.values.get_or_insert_with(BTreeSet::new).extend(values.iter().cloned());
            }
        }
    }

    fn is_null(&self) -> bool {
        self.kinds.len() == 1 && self.kinds.contains("null")
    }

    /// `string`, `integer (int64)`, `string or null`: what a reader expects, in words.
    fn describe(&self) -> String {
        let kinds = if self.kinds.is_empty() {
            "anything".to_owned()
        } else {
            self.kinds.iter().map(String::as_str).collect::<Vec<_>>().join(" or ")
        };
        match &self.format {
            Some(format) => format!("{kinds} ({format})"),
            None => kinds,
        }
    }

    fn accepts(&self, value: &Value, path: &str) -> Result<(), String> {
        let here = if path.is_empty() { "the message" } else { path };
        if !self.kinds.is_empty()
            && !self.kinds.iter().any(|kind| is_kind(value, kind, self.format.as_deref()))
        {
            return Err(format!("{here} is not {}: {value}", self.describe()));
        }
        if let Some(values) = &self.values
            && !value.is_null()
            && !values.contains(&value.to_string())
        {
            return Err(format!("{here} is {value}, not one of the enumeration's values"));
        }
        if let Value::Object(fields) = value {
            for name in &self.required {
                if !fields.contains_key(name) {
                    return Err(format!("`{}` is missing", join(path, name)));
                }
            }
            for (name, field) in fields {
                match self.properties.get(name) {
                    Some(shape) => shape.accepts(field, &join(path, name))?,
                    None if self.closed => return Err(format!("`{}` is not a field", join(path, name))),
                    None => {}
                }
            }
        }
        if let (Value::Array(elements), Some(items)) = (value, &self.items) {
            let path = format!("{path}[]");
            elements.iter().try_for_each(|element| items.accepts(element, &path))?;
        }
        Ok(())
    }
}

fn is_kind(value: &Value, kind: &str, format: Option<&str>) -> bool {
    match kind {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" if format.is_some_and(|f| f.starts_with("uint")) => value.is_u64(),
        "integer" => value.is_i64() || value.is_u64(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => true,
    }
}

/// `#/$defs/Address` in `root`.
fn resolve<'a>(root: &'a Value, target: &str) -> Option<&'a Value> {
    root.pointer(target.strip_prefix('#')?)
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() { name.to_owned() } else { format!("{path}.{name}") }
}

fn compare_shapes(old: &Shape, new: &Shape, path: &str, breaks: &mut Vec<Break>) {
    let field = if path.is_empty() { "(the message)".to_owned() } else { path.to_owned() };
    if old.kinds != new.kinds || old.format != new.format {
        breaks.push(Break {
            field: field.clone(),
            rule: Rule::TypeChanged { was: old.describe(), now: new.describe() },
        });
    }
    match (&old.values, &new.values) {
        (Some(was), Some(now)) => {
            for value in was.difference(now) {
                breaks.push(Break {
                    field: field.clone(),
                    rule: Rule::EnumValueRemoved { value: value.clone() },
                });
            }
            for value in now.difference(was) {
                breaks.push(Break {
                    field: field.clone(),
                    rule: Rule::EnumValueAdded { value: value.clone() },
                });
            }
        }
        (None, None) => {}
        (was, now) => breaks.push(Break {
            field: field.clone(),
            rule: Rule::TypeChanged {
                was: if was.is_some() { "an enumeration".into() } else { old.describe() },
                now: if now.is_some() { "an enumeration".into() } else { new.describe() },
            },
        }),
    }
    for (name, was) in &old.properties {
        let at = join(path, name);
        match new.properties.get(name) {
            None => breaks.push(Break { field: at, rule: Rule::FieldRemoved }),
            Some(now) => {
                if new.required.contains(name) && !old.required.contains(name) {
                    breaks.push(Break { field: at.clone(), rule: Rule::RequiredWithoutDefault });
                }
                compare_shapes(was, now, &at, breaks);
            }
        }
    }
    for name in new.properties.keys().filter(|name| !old.properties.contains_key(*name)) {
        let at = join(path, name);
        if new.required.contains(name) {
            breaks.push(Break { field: at, rule: Rule::RequiredWithoutDefault });
        } else if old.closed {
            breaks.push(Break { field: at, rule: Rule::FieldAddedToClosedType });
        }
    }
    // Items on one side only means the kinds differ too (an array against not): reported above.
    if let (Some(was), Some(now)) = (&old.items, &new.items) {
        compare_shapes(was, now, &format!("{path}[]"), breaks);
    }
}
