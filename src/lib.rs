//! Janua: an identity server. GraphQL-first, with a REST compatibility layer that runs the same
//! resolvers. See `DESIGN.md` in the steering repository and `README.md` here for the map.

pub mod app;
pub mod bench;
pub mod cli;
pub mod config;
pub mod context;
pub mod domain;
pub mod error;
pub mod events;
pub mod graphql;
pub mod http;
pub mod memory;
pub mod protocols;
pub mod rest;
pub mod security;
pub mod services;
pub mod shutdown;
pub mod state;
pub mod storage;
pub mod workers;

#[cfg(test)]
mod fuzz;

/// Writes `schema.graphql` and `openapi.json` into `dir` (what `janua schema` does).
pub async fn write_schema_files(dir: &std::path::Path) -> anyhow::Result<()> {
    let (sdl, openapi) = schema_files().await?;
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("schema.graphql"), sdl)?;
    std::fs::write(dir.join("openapi.json"), openapi)?;
    Ok(())
}

/// The generated SDL and OpenAPI document, from the code alone (no database needed).
pub async fn schema_files() -> anyhow::Result<(String, String)> {
    let schema = graphql::bare_schema();
    let rest = rest::RestApi::prepare(&schema, rest::routes::routes()).await?;
    let openapi = serde_json::to_string_pretty(&rest::openapi::document(&rest))? + "\n";
    Ok((schema.sdl(), openapi))
}
