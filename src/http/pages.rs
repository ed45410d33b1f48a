//! GraphiQL and the API docs, with their JavaScript and CSS shipped inside the binary.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// The GraphiQL playground, wired to `/graphql` and `/graphql/ws`.
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
    React.createElement(GraphiQL, { fetcher, defaultEditorToolsVisibility: true }),
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
  window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#docs', deepLinking: true });
</script>
</body>
</html>"#;

/// `GET /docs`.
pub async fn docs() -> Html<&'static str> {
    Html(DOCS_HTML)
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
