//! Checks on a parsed document that async-graphql's validation does not make, run before
//! anything executes, on every transport (HTTP, WebSocket, the REST table's operations):
//!
//! - **aliases**: at most `JANUA_GRAPHQL_MAX_ALIASES` aliased fields in the document, fragments
//!   included. Aliases are how one request asks for the same costly field many times
//!   (`a: signin(…) b: signin(…) …`: an argon2 hash each); the complexity limit counts fields, not
//!   what each costs.
//! - **one root field per subscription** (GraphQL's "Single root field" rule): a subscription
//!   operation selects exactly one field at its root, fragments included, and not `__typename`.
//!
//! - **introspection off** (`JANUA_GRAPHQL_INTROSPECTION=false`): `__schema` and `__type` at the
//!   root of a query are refused (async-graphql's own switch answers them with `null`).
//!
//! - **no NUL character** in any string: of an argument or default value in the document (a
//!   `\u0000` escape) or of a variable. No text Janua stores may hold one, and PostgreSQL refuses
//!   them in text while SQLite keeps them, so they are refused here, before a resolver runs, the
//!   same on both (`details.invalid_character = "U+0000"`).
//!
//! All are `VALIDATION_ERROR`s (`details.max_aliases`; `details.max_root_fields`).

use std::collections::HashSet;
use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};
use async_graphql::{ServerError, ServerResult, Value as ConstValue, Variables};

use crate::error::{AppError, ErrorCode};

/// The schema extension holding the document checks (registered before
/// [`super::errors::ErrorCodes`], so its errors keep their own code).
pub struct DocumentLimits {
    /// Most aliased fields a document may hold.
    pub max_aliases: usize,
    /// Whether `__schema` and `__type` may be asked (`JANUA_GRAPHQL_INTROSPECTION`).
    pub introspection: bool,
}

impl ExtensionFactory for DocumentLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(DocumentLimitsExt { max_aliases: self.max_aliases, introspection: self.introspection })
    }
}

struct DocumentLimitsExt {
    max_aliases: usize,
    introspection: bool,
}

fn error(e: AppError, message: &str) -> ServerError {
    let mut s = ServerError::new(message, None);
    s.source = Some(Arc::new(e));
    s
}

/// Aliased fields in `set` and below (fragment definitions are counted once, on their own).
fn aliases(set: &SelectionSet) -> usize {
    let mut n = 0;
    let mut stack = vec![set];
    while let Some(s) = stack.pop() {
        for item in &s.items {
            match &item.node {
                Selection::Field(f) => {
                    n += usize::from(f.node.alias.is_some());
                    stack.push(&f.node.selection_set.node);
                }
                Selection::InlineFragment(i) => stack.push(&i.node.selection_set.node),
                Selection::FragmentSpread(_) => {}
            }
        }
    }
    n
}

/// The fields selected at the root of `set` as (response key, field name), through inline
/// fragments and fragment spreads (each fragment once).
fn root_fields<'a>(doc: &'a ExecutableDocument, set: &'a SelectionSet) -> HashSet<(&'a str, &'a str)> {
    let mut keys = HashSet::new();
    let mut seen = HashSet::new();
    let mut stack = vec![set];
    while let Some(s) = stack.pop() {
        for item in &s.items {
            match &item.node {
                Selection::Field(f) => {
                    keys.insert((f.node.response_key().node.as_str(), f.node.name.node.as_str()));
                }
                Selection::InlineFragment(i) => stack.push(&i.node.selection_set.node),
                Selection::FragmentSpread(sp) => {
                    let name = &sp.node.fragment_name.node;
                    if seen.insert(name.as_str())
                        && let Some(fragment) = doc.fragments.get(name)
                    {
                        stack.push(&fragment.node.selection_set.node);
                    }
                }
            }
        }
    }
    keys
}

/// Whether a string (or an object key) in `values`, at any depth, holds U+0000.
fn holds_nul<'a>(values: impl IntoIterator<Item = &'a ConstValue>) -> bool {
    let mut stack: Vec<&ConstValue> = values.into_iter().collect();
    while let Some(v) = stack.pop() {
        match v {
            ConstValue::String(s) if s.contains('\0') => return true,
            ConstValue::List(items) => stack.extend(items),
            ConstValue::Object(fields) => {
                if fields.keys().any(|k| k.contains('\0')) {
                    return true;
                }
                stack.extend(fields.values());
            }
            _ => {}
        }
    }
    false
}

/// Whether a literal value of the document, at any depth, holds U+0000 (its variables are
/// checked on their own), read in place.
fn literal_holds_nul(v: &async_graphql_value::Value) -> bool {
    use async_graphql_value::Value as Literal;
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Literal::String(s) if s.contains('\0') => return true,
            Literal::List(items) => stack.extend(items),
            Literal::Object(fields) => {
                if fields.keys().any(|k| k.contains('\0')) {
                    return true;
                }
                stack.extend(fields.values());
            }
            _ => {}
        }
    }
    false
}

/// Whether an argument, a directive's argument or a variable's default value in `doc` holds U+0000.
fn document_holds_nul(doc: &ExecutableDocument) -> bool {
    let mut sets: Vec<&SelectionSet> = Vec::new();
    let mut defaults = Vec::new();
    for (_, op) in doc.operations.iter() {
        sets.push(&op.node.selection_set.node);
        defaults.extend(op.node.variable_definitions.iter().filter_map(|d| d.node.default_value.as_ref()));
        if op.node.directives.iter().any(|d| d.node.arguments.iter().any(|(_, v)| literal_holds_nul(&v.node)))
        {
            return true;
        }
    }
    sets.extend(doc.fragments.values().map(|f| &f.node.selection_set.node));
    if holds_nul(defaults.iter().map(|d| &d.node)) {
        return true;
    }
    while let Some(s) = sets.pop() {
        for item in &s.items {
            let (directives, arguments) = match &item.node {
                Selection::Field(f) => {
                    sets.push(&f.node.selection_set.node);
                    (&f.node.directives, Some(&f.node.arguments))
                }
                Selection::InlineFragment(i) => {
                    sets.push(&i.node.selection_set.node);
                    (&i.node.directives, None)
                }
                Selection::FragmentSpread(sp) => (&sp.node.directives, None),
            };
            let args =
                arguments.into_iter().flatten().chain(directives.iter().flat_map(|d| &d.node.arguments));
            for (_, v) in args {
                if literal_holds_nul(&v.node) {
                    return true;
                }
            }
        }
    }
    false
}

/// Refuses a request whose document or variables hold U+0000 in a string.
pub fn check_characters(doc: &ExecutableDocument, variables: &Variables) -> Result<(), ServerError> {
    let in_variables = holds_nul(variables.values()) || variables.keys().any(|k| k.contains('\0'));
    if in_variables || document_holds_nul(doc) {
        let e = AppError::new(ErrorCode::ValidationError)
            .with_details(serde_json::json!({ "invalid_character": "U+0000" }));
        return Err(error(e, "A string holds a NUL character (U+0000)"));
    }
    Ok(())
}

/// The checks of this module on `doc`.
pub fn check(doc: &ExecutableDocument, max_aliases: usize, introspection: bool) -> Result<(), ServerError> {
    let total: usize =
        doc.operations.iter().map(|(_, op)| aliases(&op.node.selection_set.node)).sum::<usize>()
            + doc.fragments.values().map(|f| aliases(&f.node.selection_set.node)).sum::<usize>();
    if total > max_aliases {
        let e = AppError::new(ErrorCode::ValidationError)
            .with_details(serde_json::json!({ "max_aliases": max_aliases }));
        return Err(error(e, "Too many aliases"));
    }
    for (name, op) in doc.operations.iter() {
        let fields = root_fields(doc, &op.node.selection_set.node);
        if !introspection && fields.iter().any(|(_, f)| matches!(*f, "__schema" | "__type")) {
            let e = AppError::new(ErrorCode::ValidationError)
                .with_details(serde_json::json!({ "introspection": "disabled" }));
            return Err(error(e, "Introspection is disabled"));
        }
        if op.node.ty != OperationType::Subscription {
            continue;
        }
        let keys: HashSet<&str> = fields.iter().map(|(k, _)| *k).collect();
        if keys.len() != 1 || fields.iter().any(|(_, f)| *f == "__typename") {
            let what =
                name.map_or_else(|| "Anonymous Subscription".to_owned(), |n| format!("Subscription \"{n}\""));
            let message = format!("{what} must select only one top level field.");
            let e = AppError::new(ErrorCode::ValidationError)
                .with_details(serde_json::json!({ "root_fields": keys.len(), "max_root_fields": 1 }));
            return Err(error(e, &message));
        }
    }
    Ok(())
}

#[async_graphql::async_trait::async_trait]
impl Extension for DocumentLimitsExt {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        check(&doc, self.max_aliases, self.introspection)?;
        check_characters(&doc, variables)?;
        Ok(doc)
    }
}
