//! Writes `extensions: {code, request_id, details}` and the caller's language onto every
//! GraphQL error, from the `AppError` async-graphql keeps as the error's source.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextSubscribe};
use async_graphql::futures_util::stream::{BoxStream, StreamExt};
use async_graphql::{ErrorExtensionValues, Response, ServerError, Value};

use crate::context::RequestContext;
use crate::error::{AppError, ErrorCode, Locale};

/// The code of an error that did not come from a service: a syntax error is a bad request,
/// a failed validation (unknown field, wrong variable type, limits) a validation error.
fn code_of(e: &ServerError) -> (ErrorCode, Option<AppError>) {
    if let Some(app) = e.source::<AppError>() {
        return (app.code, Some(app.clone()));
    }
    // Every resolver fails with an `AppError`; anything else was raised by async-graphql itself
    // while reading the request: a syntax error (bad request) or a document, variable or argument
    // that does not fit the schema or its limits (validation).
    let code =
        if e.message.starts_with(" --> ") { ErrorCode::BadRequest } else { ErrorCode::ValidationError };
    (code, None)
}

/// Adds code, request id and localized message to each error of `resp`.
pub fn decorate_response(resp: &mut Response, rc: &RequestContext) {
    for e in &mut resp.errors {
        decorate_error(e, rc);
    }
}

/// A response holding only `e`, decorated like every other error (code, request id, language):
/// what a transport answers when it refuses an operation before running it.
pub fn error_response(e: AppError, rc: &RequestContext) -> Response {
    let mut error = ServerError::new(String::new(), None);
    error.source = Some(Arc::new(e));
    let mut resp = Response::from_errors(vec![error]);
    decorate_response(&mut resp, rc);
    resp
}

/// The code of the first error (REST uses it to choose the status).
pub fn first_error_code(resp: &Response) -> Option<(ErrorCode, Option<AppError>)> {
    resp.errors.first().map(code_of)
}

fn decorate_error(e: &mut ServerError, rc: &RequestContext) {
    let (code, app) = code_of(e);
    let locale: Locale = rc.locale;
    let ext = e.extensions.get_or_insert_with(ErrorExtensionValues::default);
    ext.set("code", code.as_str());
    ext.set("request_id", rc.request_id.as_str());
    if let Some(app) = app {
        app.log(&rc.request_id);
        e.message = app.message(locale);
        if let Some(details) = app.details_json(locale) {
            ext.set("details", Value::from_json(details).unwrap_or(Value::Null));
        }
    }
}

/// The schema extension that decorates subscription errors (queries and mutations are
/// decorated by the transport, which holds the request context).
pub struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodesExt)
    }
}

struct ErrorCodesExt;

#[async_graphql::async_trait::async_trait]
impl Extension for ErrorCodesExt {
    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        let rc = ctx.data_opt::<RequestContext>().cloned().unwrap_or_default();
        next.run(ctx, stream)
            .map(move |mut r| {
                decorate_response(&mut r, &rc);
                r
            })
            .boxed()
    }
}
