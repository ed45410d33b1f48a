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
//! All are `VALIDATION_ERROR`s (`details.max_aliases`; `details.max_root_fields`).

use std::collections::HashSet;
use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};
use async_graphql::{ServerError, ServerResult, Variables};

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
        Ok(doc)
    }
}
