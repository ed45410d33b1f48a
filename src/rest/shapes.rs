//! The JSON Schema of each route's `data`, derived from its operation's selection set and the
//! schema's output types (read once by introspection), so the OpenAPI document says exactly what
//! the adapter answers: the snake_case keys, which values may be null, arrays for lists.

use std::collections::HashMap;

use async_graphql::Positioned;
use async_graphql::parser::types::{ExecutableDocument, Field, OperationType, Selection, SelectionSet};
use serde_json::{Map, Value, json};

use super::casing::{VERBATIM, camel_to_snake};
use crate::graphql::JanuaSchema;

const TYPE_REF: &str =
    "kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } }";

/// The schema's types: fields (with their type references) and enum values, by type name.
pub struct Types {
    query: String,
    mutation: String,
    fields: HashMap<String, HashMap<String, Value>>,
    enums: HashMap<String, Vec<String>>,
}

impl Types {
    /// Reads every type of `schema` with one introspection query.
    pub async fn read(schema: &JanuaSchema) -> anyhow::Result<Self> {
        let q = format!(
            "{{ __schema {{ queryType {{ name }} mutationType {{ name }} types {{ name kind \
             enumValues {{ name }} fields {{ name type {{ {TYPE_REF} }} }} }} }} }}"
        );
        let resp = schema.execute(q).await;
        anyhow::ensure!(resp.errors.is_empty(), "introspection failed: {:?}", resp.errors);
        let data = resp.data.into_json()?;
        let s = &data["__schema"];
        let mut fields = HashMap::new();
        let mut enums = HashMap::new();
        for t in s["types"].as_array().into_iter().flatten() {
            let name = t["name"].as_str().unwrap_or_default().to_owned();
            if let Some(fs) = t["fields"].as_array() {
                let by_name =
                    fs.iter().map(|f| (f["name"].as_str().unwrap_or_default().to_owned(), f["type"].clone()));
                fields.insert(name.clone(), by_name.collect());
            }
            if let Some(vs) = t["enumValues"].as_array() {
                enums.insert(name, vs.iter().filter_map(|v| v["name"].as_str().map(str::to_owned)).collect());
            }
        }
        Ok(Self {
            query: s["queryType"]["name"].as_str().unwrap_or("Query").to_owned(),
            mutation: s["mutationType"]["name"].as_str().unwrap_or("Mutation").to_owned(),
            fields,
            enums,
        })
    }

    /// The schema of the operation's root field value, as the adapter renders it (snake_case
    /// keys). With `list`, the root is a connection and the schema is the array of its nodes;
    /// with `omit_nulls`, the root object's nullable fields may be absent.
    pub fn data_schema(&self, doc: &ExecutableDocument, list: bool, omit_nulls: bool) -> Option<Value> {
        let async_graphql::parser::types::DocumentOperations::Single(op) = &doc.operations else {
            return None;
        };
        let root = match op.node.ty {
            OperationType::Mutation => &self.mutation,
            _ => &self.query,
        };
        let (field, ty) = self.selected(doc, root, &op.node.selection_set.node).into_iter().next()?;
        if !list {
            return Some(self.field_schema(doc, &ty, Some(field), omit_nulls));
        }
        // connection { edges { node { … } } }
        let conn = named(&ty)?;
        let edges = self.selected(doc, &conn, &field.node.selection_set.node);
        let (edges_field, edges_ty) = edges.into_iter().find(|(f, _)| f.node.name.node == "edges")?;
        let edge = named(&edges_ty)?;
        let nodes = self.selected(doc, &edge, &edges_field.node.selection_set.node);
        let (node_field, node_ty) = nodes.into_iter().find(|(f, _)| f.node.name.node == "node")?;
        let item = self.field_schema(doc, &node_ty, Some(node_field), false);
        Some(json!({"type": "array", "items": item}))
    }

    /// The fields a selection set selects on `type_name` (fragments flattened), with their types.
    fn selected<'d>(
        &self,
        doc: &'d ExecutableDocument,
        type_name: &str,
        set: &'d SelectionSet,
    ) -> Vec<(&'d Positioned<Field>, Value)> {
        let mut out = Vec::new();
        let fields = self.fields.get(type_name);
        for sel in &set.items {
            match &sel.node {
                Selection::Field(f) => {
                    if let Some(t) = fields.and_then(|fs| fs.get(f.node.name.node.as_str())) {
                        out.push((f, t.clone()));
                    }
                }
                Selection::FragmentSpread(s) => {
                    if let Some(def) = doc.fragments.get(&s.node.fragment_name.node) {
                        out.extend(self.selected(doc, type_name, &def.node.selection_set.node));
                    }
                }
                // `... on Member { … }` selects on that member of a union.
                Selection::InlineFragment(f) => {
                    let on = f.node.type_condition.as_ref().map_or(type_name, |c| c.node.on.node.as_str());
                    out.extend(self.selected(doc, on, &f.node.selection_set.node))
                }
            }
        }
        out
    }

    /// The schema of a value of type `ty` (`NON_NULL` wrappers make it non-nullable).
    fn field_schema(
        &self,
        doc: &ExecutableDocument,
        ty: &Value,
        field: Option<&Positioned<Field>>,
        omit_nulls: bool,
    ) -> Value {
        if ty["kind"] == "NON_NULL" {
            strip_null_schema(self.type_schema(doc, &ty["ofType"], field, omit_nulls))
        } else {
            self.type_schema(doc, ty, field, omit_nulls)
        }
    }

    /// The schema of a nullable value of type `ty`.
    fn type_schema(
        &self,
        doc: &ExecutableDocument,
        ty: &Value,
        field: Option<&Positioned<Field>>,
        omit_nulls: bool,
    ) -> Value {
        let nullable = |t: &str| json!([t, "null"]);
        let name = ty["name"].as_str().unwrap_or_default();
        match ty["kind"].as_str() {
            Some("LIST") => {
                json!({"type": nullable("array"), "items": self.field_schema(doc, &ty["ofType"], field, false)})
            }
            Some("SCALAR") => match scalar(name) {
                Some((t, format)) => {
                    let mut s = json!({"type": nullable(t)});
                    if let Some(f) = format {
                        s["format"] = json!(f);
                    }
                    s
                }
                None => json!({}),
            },
            Some("ENUM") => {
                let mut values: Vec<Value> =
                    self.enums.get(name).into_iter().flatten().map(|v| json!(v)).collect();
                values.push(Value::Null);
                json!({"type": nullable("string"), "enum": values})
            }
            _ => self.object_schema(doc, name, field, omit_nulls),
        }
    }

    /// A nullable object of the fields `field` selects; with `omit_nulls` only its non-null
    /// fields are required. A union's value is one of its members: the fields of each are
    /// listed, none required.
    fn object_schema(
        &self,
        doc: &ExecutableDocument,
        type_name: &str,
        field: Option<&Positioned<Field>>,
        omit_nulls: bool,
    ) -> Value {
        let mut props = Map::new();
        let mut required = Vec::new();
        let union = !self.fields.contains_key(type_name);
        if let Some(f) = field {
            for (sub, ty) in self.selected(doc, type_name, &f.node.selection_set.node) {
                let key = sub.node.alias.as_ref().map_or(&sub.node.name.node, |a| &a.node).to_string();
                let schema = if VERBATIM.contains(&key.as_str()) {
                    json!({})
                } else {
                    self.field_schema(doc, &ty, Some(sub), false)
                };
                let key = camel_to_snake(&key).into_owned();
                if !union && (!omit_nulls || ty["kind"] == "NON_NULL") {
                    required.push(json!(key));
                }
                props.insert(key, schema);
            }
        }
        json!({
            "type": ["object", "null"],
            "properties": props,
            "required": required,
        })
    }
}

/// The JSON type and format of a scalar (`None`: any JSON value).
fn scalar(name: &str) -> Option<(&'static str, Option<&'static str>)> {
    match name {
        "String" | "ID" => Some(("string", None)),
        "Int" => Some(("integer", None)),
        "Float" => Some(("number", None)),
        "Boolean" => Some(("boolean", None)),
        "DateTime" => Some(("string", Some("date-time"))),
        "NaiveDate" => Some(("string", Some("date"))),
        "UUID" => Some(("string", Some("uuid"))),
        _ => None,
    }
}

/// The named type under any `NON_NULL`/`LIST` wrappers.
fn named(ty: &Value) -> Option<String> {
    match ty["kind"].as_str() {
        Some("NON_NULL" | "LIST") => named(&ty["ofType"]),
        _ => ty["name"].as_str().map(str::to_owned),
    }
}

/// A schema made non-nullable: `["t", "null"]` → `"t"`, and `null` out of an `enum`.
fn strip_null_schema(mut s: Value) -> Value {
    if let Some(t) = s["type"].as_array().and_then(|a| a.first().cloned()) {
        s["type"] = t;
    }
    if let Some(values) = s.get_mut("enum").and_then(Value::as_array_mut) {
        values.retain(|v| !v.is_null());
    }
    s
}
