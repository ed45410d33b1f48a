//! The command line: `serve` (default), `migrate`, `schema`, `keys rotate`, `bench`.

use clap::{Parser, Subcommand};

use crate::config::Config;

/// Janua: an identity server.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve HTTP, GraphQL and WebSocket (the default).
    Serve,
    /// Run pending database migrations and exit.
    Migrate,
    /// Write schema/schema.graphql and schema/openapi.json.
    Schema {
        /// Directory to write into.
        #[arg(long, default_value = "schema")]
        out: std::path::PathBuf,
    },
    /// Signing-key management.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Measure a running server (see README, "Benchmarks").
    Bench(crate::bench::BenchArgs),
}

/// Signing-key actions.
#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Create a new signing key; older keys stay published until their last token expires.
    Rotate,
}
