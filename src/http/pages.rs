//! The home page, GraphiQL and the API docs, with their JavaScript and CSS shipped inside the
//! binary (they work offline: no CDN).

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::http::headers;

/// The pages a browser can open, as (path, title, what it is): the home page links them, and
/// `App::run` prints them at start.
pub const PAGES: [(&str, &str, &str); 5] = [
    (
        "/dashboard",
        "Dashboard",
        "the live security dashboard (sessions, audit stream, sign-ins, webhooks, members)",
    ),
    ("/graphql", "GraphiQL", "the GraphQL playground (queries, mutations, subscriptions)"),
    ("/docs", "API docs", "the REST reference, from /openapi.json"),
    ("/health", "Health", "liveness, as JSON"),
    ("/.well-known/jwks.json", "JWKS", "the public keys that verify access tokens"),
];

/// The home page (`GET /`) for browsers: what Janua is and where to go.
pub fn home_html() -> String {
    let items: String = PAGES
        .iter()
        .map(|(path, title, what)| {
            format!("<li><a href=\"{path}\">{title}</a> <code>{path}</code> — {what}</li>\n")
        })
        .collect();
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8"><title>Janua</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}}code{{font-size:.9em}}</style>
</head>
<body>
<h1>Janua</h1>
<p>An identity server: GraphQL at <code>/graphql</code> (WebSocket subscriptions at <code>/graphql/ws</code>),
REST at <code>/api/v1</code>.</p>
<ul>
{items}</ul>
<p>Start in GraphiQL: its example signs up, signs in and asks <code>me</code>; put the access token in its
Headers pane as <code>{{"Authorization": "Bearer &lt;accessToken&gt;"}}</code>.</p>
</body>
</html>
"#
    )
}

/// `GET /`: the home page, unless the client asks for JSON only (then the usual 404 envelope,
/// from `not_found`: there is no JSON resource at `/`).
pub fn wants_home_page(headers: &HeaderMap) -> bool {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    !accept.contains("application/json") || accept.contains("text/html")
}

/// The GraphiQL playground, wired to `/graphql` and `/graphql/ws`, opening on an example
/// document (sign-up, sign-in, `me`) that says how to set the `Authorization` header.
pub const GRAPHIQL_HTML: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8"><title>Janua GraphQL</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/assets/graphiql.min.css">
<style>body{margin:0;height:100vh}#graphiql{height:100vh}</style>
</head>
<body>
<div id="graphiql">Loading…</div>
<script type="text/plain" id="example">
# Welcome to Janua's GraphQL API.
#
# 1. Run "Signup" (or "Signin" when the account exists): press the run button
#    and pick the operation.
# 2. Copy "accessToken" from the answer.
# 3. In the Headers pane below, write (and keep) the header:
#      {"Authorization": "Bearer <accessToken>"}
# 4. Run "Me". Subscriptions (over /graphql/ws) take the same header.
#
# The Docs button (top left) lists every field.

mutation Signup {
  signup(input: {email: "ada@example.com", password: "a long passphrase 2026", name: "Ada"}) {
    user { id email }
    tokens { accessToken refreshToken expiresIn }
  }
}

mutation Signin {
  signin(input: {email: "ada@example.com", password: "a long passphrase 2026"}) {
    mfaRequired
    mfaToken
    tokens { accessToken refreshToken expiresIn }
  }
}

query Me {
  me { id email name emailVerified createdAt }
}
</script>
<script src="/assets/react.production.min.js"></script>
<script src="/assets/react-dom.production.min.js"></script>
<script src="/assets/graphiql.min.js"></script>
<script>
  const wsProto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const fetcher = GraphiQL.createFetcher({
    url: '/graphql',
    subscriptionUrl: wsProto + '//' + location.host + '/graphql/ws',
  });
  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    React.createElement(GraphiQL, {
      fetcher,
      defaultQuery: document.getElementById('example').textContent.trim() + '\n',
      defaultEditorToolsVisibility: 'headers',
    }),
  );
</script>
</body>
</html>"#;

/// The REST API reference (Swagger UI over `/openapi.json`).
pub const DOCS_HTML: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8"><title>Janua API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/assets/swagger-ui.css">
</head>
<body>
<div id="docs"></div>
<script src="/assets/swagger-ui-bundle.js"></script>
<script>
  window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#docs', deepLinking: true, validatorUrl: null });
</script>
</body>
</html>"#;

/// `GET /docs` (inline styles allowed: Swagger UI sets them at run time).
pub async fn docs() -> Response {
    headers::html(DOCS_HTML.to_owned(), true)
}

/// The GraphiQL page (inline styles allowed: its dialogs insert a `<style>` element).
pub fn graphiql() -> Response {
    headers::html(GRAPHIQL_HTML.to_owned(), true)
}

/// `GET /assets/{file}`: the vendored files, cached for a day.
pub async fn asset(Path(file): Path<String>) -> Response {
    let (body, mime): (&'static [u8], &str) = match file.as_str() {
        "graphiql.min.js" => (include_bytes!("../../assets/vendor/graphiql.min.js"), "text/javascript"),
        "graphiql.min.css" => (include_bytes!("../../assets/vendor/graphiql.min.css"), "text/css"),
        "react.production.min.js" => {
            (include_bytes!("../../assets/vendor/react.production.min.js"), "text/javascript")
        }
        "react-dom.production.min.js" => {
            (include_bytes!("../../assets/vendor/react-dom.production.min.js"), "text/javascript")
        }
        "swagger-ui-bundle.js" => {
            (include_bytes!("../../assets/vendor/swagger-ui-bundle.js"), "text/javascript")
        }
        "swagger-ui.css" => (include_bytes!("../../assets/vendor/swagger-ui.css"), "text/css"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    ([(header::CONTENT_TYPE, mime), (header::CACHE_CONTROL, "public, max-age=86400")], body).into_response()
}
