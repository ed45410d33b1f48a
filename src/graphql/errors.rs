//! Writes `extensions: {code, request_id, details}` and the caller's language onto every
//! GraphQL error, from the `AppError` async-graphql keeps as the error's source — or, for a
//! request async-graphql refused before running it, from the [`Refused`] kind the schema
//! extension [`ErrorCodes`] gave the error. [`decorate_response`] is the one decoration every
//! transport (HTTP, WebSocket, REST's status) reads.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextSubscribe, NextValidation,
};
use async_graphql::futures_util::stream::{BoxStream, StreamExt};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{
    ErrorExtensionValues, Response, ServerError, ServerResult, ValidationResult, Value, Variables, parser,
};

use crate::context::RequestContext;
use crate::error::{AppError, ErrorCode, Locale};

/// Why async-graphql refused a request before running it: the source [`ErrorCodes`] gives the
/// errors of its parsing and validation steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The document is not GraphQL (a syntax error of the parser): a bad request.
    Syntax,
    /// The document is GraphQL but does not fit the schema or its limits (an unknown field, a
    /// wrong variable type, two anonymous operations, too deep, too complex): a validation error.
    Invalid,
}

/// The code of an error, and the service's error behind it if there is one.
fn code_of(e: &ServerError) -> (ErrorCode, Option<AppError>) {
    if let Some(app) = e.source::<AppError>() {
        return (app.code, Some(app.clone()));
    }
    // Every resolver fails with an `AppError`; anything else was raised by async-graphql itself
    // while reading the request. Only a syntax error is a bad request; the rest (the steps
    // tagged `Invalid`, and what async-graphql checks while it runs: the operation named,
    // an argument's value) is a request that does not fit the schema.
    let code = match e.source::<Refused>() {
        Some(Refused::Syntax) => ErrorCode::BadRequest,
        Some(Refused::Invalid) | None => ErrorCode::ValidationError,
    };
    (code, None)
}

/// `e` with `why` as its source.
fn refused(mut e: ServerError, why: Refused) -> ServerError {
    e.source = Some(Arc::new(why));
    e
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

/// Whether `resp` failed before execution began (a document that does not parse or validate,
/// variables that do not coerce, no operation to run, a limit): no data, and no error with a
/// path (every resolver's error has one).
pub fn is_request_error(resp: &Response) -> bool {
    resp.data == Value::Null && !resp.errors.is_empty() && resp.errors.iter().all(|e| e.path.is_empty())
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

/// Request data: the document was validated against this schema before, and it declares no
/// variables, so validating it again would answer the same (the REST routes' constant
/// documents, checked once at start by [`crate::rest::adapter::RestApi::validate_constant`]).
/// Validation is skipped; everything else (parsing limits, execution) runs as usual.
#[derive(Clone, Copy)]
pub struct Prevalidated;

/// Request data: validate the document and stop before executing it (the answer then has no
/// data, and the errors of validation if any).
#[derive(Clone, Copy)]
pub struct ValidateOnly;

/// The schema extension that tags the errors of parsing and validation with their [`Refused`]
/// kind, and decorates subscription errors (queries and mutations are decorated by the
/// transport, which holds the request context).
pub struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodesExt)
    }
}

struct ErrorCodesExt;

#[async_graphql::async_trait::async_trait]
impl Extension for ErrorCodesExt {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        next.run(ctx, query, variables).await.map_err(|e| {
            // This step parses the document (unless the caller parsed it already) and checks
            // its depth. Which of the two failed is read off the parser's own error kind, parsing
            // again on this error path only.
            let why = match parser::parse_query(query) {
                Err(parser::Error::Syntax { .. }) => Refused::Syntax,
                _ => Refused::Invalid,
            };
            refused(e, why)
        })
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        if ctx.data_opt::<Prevalidated>().is_some() {
            return Ok(ValidationResult { cache_control: Default::default(), complexity: 0, depth: 0 });
        }
        next.run(ctx)
            .await
            .map_err(|errors| errors.into_iter().map(|e| refused(e, Refused::Invalid)).collect())
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        if ctx.data_opt::<ValidateOnly>().is_some() {
            return Response::default();
        }
        next.run(ctx, operation_name).await
    }

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
