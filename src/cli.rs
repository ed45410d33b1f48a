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
    /// Administrator accounts.
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Bulk-insert synthetic users (for benchmarks); they cannot sign in.
    Seed {
        /// How many users to add.
        #[arg(long)]
        users: u64,
    },
}

/// Administrator actions.
#[derive(Debug, Subcommand)]
pub enum AdminAction {
    /// Create an administrator, or make an existing user one (a fresh install's first step).
    Create {
        #[arg(long)]
        email: String,
        /// The password; read from `JANUA_ADMIN_PASSWORD` when not given.
        #[arg(long, env = "JANUA_ADMIN_PASSWORD", hide_env_values = true)]
        password: String,
    },
}

/// Signing-key actions.
#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Create a new signing key; older keys stay published until their last token expires.
    Rotate,
}
