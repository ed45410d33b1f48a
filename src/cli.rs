//! The command line: `serve` (default), `migrate`, `schema`, `keys rotate`, `admin create`,
//! `seed`, `bench`. Every setting of [`Config`] is a global flag: it is accepted before and after
//! the subcommand (`janua --addr X serve` and `janua serve --addr X`).

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::Config;

/// Janua: an identity server.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The settings, global: given before or after the subcommand (the later wins).
    #[command(flatten, next_help_heading = "Settings")]
    pub config: Config,
}

impl Cli {
    /// Parses the process's arguments (exits with clap's message when they are wrong).
    pub fn parse_args() -> Self {
        Self::try_parse_args_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }

    /// Parses `args` (the first is the program name), as [`Cli::parse_args`] does.
    pub fn try_parse_args_from<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Self::command().try_get_matches_from(args)?;
        let mut cli = Self::from_arg_matches(&matches)?;
        // `bench --database-url` and `bench --redis-url` are the bench's own (no default;
        // `JANUA_BENCH_REDIS_URL`), but clap copies the global settings of the same names down
        // into them, defaults and environment (`DATABASE_URL`, `REDIS_URL`) included: keep
        // what the command line gave (before or after `bench`, like every flag), nothing else.
        if let (Some(Command::Bench(args)), Some(sub)) =
            (&mut cli.command, matches.subcommand_matches("bench"))
        {
            let given = |id: &str| sub.value_source(id) == Some(ValueSource::CommandLine);
            if !given("database_url") {
                args.database_url = None;
            }
            if !given("redis_url") {
                args.redis_url = std::env::var("JANUA_BENCH_REDIS_URL").ok().filter(|v| !v.is_empty());
            }
        }
        Ok(cli)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_args_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn settings_are_accepted_before_and_after_the_subcommand() {
        let addr = "127.0.0.1:9000".parse().unwrap();
        for args in [
            &["janua", "serve", "--addr", "127.0.0.1:9000"][..],
            &["janua", "--addr", "127.0.0.1:9000", "serve"],
            &["janua", "--addr", "127.0.0.1:9000"],
        ] {
            let cli = parse(args);
            assert_eq!(cli.config.addr, addr, "{args:?}");
            assert!(matches!(cli.command, None | Some(Command::Serve)), "{args:?}");
        }
        for sub in [
            &["migrate"][..],
            &["keys", "rotate"],
            &["admin", "create", "--email", "a@b.c", "--password", "p"],
            &["seed", "--users", "3"],
        ] {
            let url = "postgres://db/janua";
            let after = [&["janua"][..], sub, &["--database-url", url, "--master-key-file", "/k"]].concat();
            let before = [&["janua", "--database-url", url, "--master-key-file", "/k"][..], sub].concat();
            for args in [after, before] {
                let cli = parse(&args);
                assert_eq!(cli.config.database_url, url, "{args:?}");
                assert_eq!(cli.config.master_key_file, std::path::Path::new("/k"), "{args:?}");
            }
        }
        let cli = parse(&["janua", "schema", "--out", "x", "--log-format", "json"]);
        assert_eq!(cli.config.log_format, crate::config::LogFormat::Json);
        assert!(matches!(cli.command, Some(Command::Schema { out }) if out == std::path::Path::new("x")));
    }

    #[test]
    fn an_unset_setting_after_the_subcommand_keeps_the_one_before() {
        let cli = parse(&["janua", "--addr", "127.0.0.1:9000", "serve", "--issuer", "https://id.example"]);
        assert_eq!(cli.config.addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(cli.config.issuer, "https://id.example");
        let cli = parse(&["janua", "--addr", "127.0.0.1:9000", "serve", "--addr", "127.0.0.1:9001"]);
        assert_eq!(cli.config.addr, "127.0.0.1:9001".parse().unwrap());
    }

    #[test]
    fn bench_keeps_its_own_database_and_redis_flags() {
        let cli = parse(&["janua", "bench", "--only", "directory", "--database-url", "postgres://x/y"]);
        let Some(Command::Bench(args)) = cli.command else { panic!("not bench") };
        assert_eq!(args.database_url.as_deref(), Some("postgres://x/y"));
        assert_eq!(args.only, Some(crate::bench::BenchGroup::Directory));
        // Not given: not the server's default database.
        let Some(Command::Bench(args)) = parse(&["janua", "bench"]).command else { panic!("not bench") };
        assert_eq!(args.database_url, None);
        let cli = parse(&["janua", "--database-url", "postgres://x/y", "bench"]);
        let Some(Command::Bench(args)) = cli.command else { panic!("not bench") };
        assert_eq!(args.database_url.as_deref(), Some("postgres://x/y"));
        let cli = parse(&["janua", "bench", "--redis-url", "redis://r/"]);
        let Some(Command::Bench(args)) = cli.command else { panic!("not bench") };
        assert_eq!(args.redis_url.as_deref(), Some("redis://r/"));
    }
}
