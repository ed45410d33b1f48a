//! The OpenAPI document, generated from the route table and the schema's input types.

use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ArrayBuilder, ComponentsBuilder, ContentBuilder, InfoBuilder, ObjectBuilder, OpenApi, OpenApiBuilder,
    PathsBuilder, Ref, Required, ResponseBuilder, Type,
};

use super::adapter::{FieldKind, RestApi};
use super::routes::{Body, Shape};
use crate::error::ErrorCode;

fn method(m: &axum::http::Method) -> HttpMethod {
    match *m {
        axum::http::Method::GET => HttpMethod::Get,
        axum::http::Method::PUT => HttpMethod::Put,
        axum::http::Method::PATCH => HttpMethod::Patch,
        axum::http::Method::DELETE => HttpMethod::Delete,
        _ => HttpMethod::Post,
    }
}

fn envelope_schema(list: bool) -> ObjectBuilder {
    let mut o = ObjectBuilder::new()
        .property("success", ObjectBuilder::new().schema_type(Type::Boolean))
        .property("data", ObjectBuilder::new())
        .property("message", ObjectBuilder::new().schema_type(Type::String))
        .property("timestamp", ObjectBuilder::new().schema_type(Type::String))
        .property("request_id", ObjectBuilder::new().schema_type(Type::String))
        .required("success")
        .required("data");
    if list {
        o = o.property("pagination", Ref::from_schema_name("Pagination"));
    }
    o
}

/// Builds the document for every prepared route.
pub fn document(api: &RestApi) -> OpenApi {
    let mut paths = PathsBuilder::new();
    for p in &api.routes {
        let r = &p.route;
        let mut op = OperationBuilder::new()
            .operation_id(Some(r.operation))
            .summary(Some(r.summary))
            .tag(r.tag)
            .description(Some(format!("Runs the GraphQL operation `{}`.", r.operation)));
        for name in r.path_params {
            op = op.parameter(
                ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
            );
        }
        if r.paginated {
            op = op
                .parameter(
                    ParameterBuilder::new()
                        .name("limit")
                        .parameter_in(ParameterIn::Query)
                        .description(Some("Page size, 1 to 100 (default 20)"))
                        .schema(Some(
                            ObjectBuilder::new()
                                .schema_type(Type::Integer)
                                .minimum(Some(1))
                                .maximum(Some(100)),
                        )),
                )
                .parameter(
                    ParameterBuilder::new()
                        .name("cursor")
                        .parameter_in(ParameterIn::Query)
                        .description(Some("`next_cursor` or `previous_cursor` of a previous page"))
                        .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
                );
        }
        if r.body != Body::None {
            let mut schema = ObjectBuilder::new().schema_type(Type::Object);
            for f in &p.input {
                let t = match f.kind {
                    FieldKind::String => Type::String,
                    FieldKind::Int => Type::Integer,
                    FieldKind::Boolean => Type::Boolean,
                    FieldKind::StringList => Type::Array,
                    FieldKind::Json | FieldKind::Other => Type::Object,
                };
                schema = if t == Type::Array {
                    let item = ObjectBuilder::new().schema_type(Type::String);
                    schema.property(&f.rest_name, ArrayBuilder::new().items(item))
                } else {
                    schema.property(&f.rest_name, ObjectBuilder::new().schema_type(t))
                };
                if f.required {
                    schema = schema.required(&f.rest_name);
                }
            }
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(if r.body == Body::Input { Required::True } else { Required::False }))
                    .content("application/json", ContentBuilder::new().schema(Some(schema)).build())
                    .build(),
            ));
        }
        let ok = if r.shape == Shape::Empty {
            ResponseBuilder::new().description("Done, no content")
        } else {
            ResponseBuilder::new().description("Success envelope").content(
                "application/json",
                ContentBuilder::new().schema(Some(envelope_schema(r.shape == Shape::List))).build(),
            )
        };
        op = op.response(r.status.to_string(), ok);
        let err = ResponseBuilder::new()
            .description("Error envelope")
            .content(
                "application/json",
                ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorEnvelope"))).build(),
            )
            .build();
        op = op.response("default", err);
        if r.auth {
            op = op.security(SecurityRequirement::new("bearer", Vec::<String>::new()));
        }
        let path = format!("/api/v1{}", r.path);
        paths = paths.path(path, PathItem::new(method(&r.method), op));
    }
    let codes: Vec<String> = ErrorCode::ALL.iter().map(|c| c.as_str().to_owned()).collect();
    let components = ComponentsBuilder::new()
        .schema(
            "ErrorEnvelope",
            ObjectBuilder::new()
                .property("success", ObjectBuilder::new().schema_type(Type::Boolean))
                .property(
                    "error",
                    ObjectBuilder::new()
                        .property(
                            "code",
                            ObjectBuilder::new().schema_type(Type::String).enum_values(Some(codes)),
                        )
                        .property("message", ObjectBuilder::new().schema_type(Type::String))
                        .property("details", ObjectBuilder::new().schema_type(Type::Object))
                        .required("code")
                        .required("message"),
                )
                .property("timestamp", ObjectBuilder::new().schema_type(Type::String))
                .property("request_id", ObjectBuilder::new().schema_type(Type::String)),
        )
        .schema(
            "Pagination",
            ObjectBuilder::new()
                .property("has_next", ObjectBuilder::new().schema_type(Type::Boolean))
                .property("has_previous", ObjectBuilder::new().schema_type(Type::Boolean))
                .property("next_cursor", ObjectBuilder::new().schema_type(Type::String))
                .property("previous_cursor", ObjectBuilder::new().schema_type(Type::String))
                .property("total_count", ObjectBuilder::new().schema_type(Type::Integer)),
        )
        .security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build(),
            ),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new().title("Janua").version(env!("CARGO_PKG_VERSION")).description(Some(
                "REST compatibility layer: every route runs a GraphQL operation of /graphql.",
            )),
        )
        .paths(paths)
        .components(Some(components))
        .build()
}
