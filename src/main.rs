use janua::cli::{AdminAction, Cli, Command, KeysAction};
use janua::config::LogFormat;

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse_args();
    if matches!(cli.command, None | Some(Command::Serve)) {
        // Before the runtime starts its threads.
        janua::memory::limit_malloc_arenas();
    }
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    init_logging(cli.config.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = janua::app::App::build(cli.config).await?;
            // Started (migrated, schema built, routes prepared, listening): what that took and
            // serving does not hold goes back to the system before the first request.
            let r = janua::memory::release_startup_memory();
            tracing::debug!(
                mappings = r.mappings,
                rss_before_kib = r.rss_before_kib,
                rss_after_kib = r.rss_after_kib,
                "released the memory starting took"
            );
            app.run().await
        }
        Command::Migrate => {
            let db = janua::storage::connect(&cli.config.database_url, None).await?;
            janua::storage::migrate(&db).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Schema { out } => {
            janua::write_schema_files(&out).await?;
            println!("wrote {}/schema.graphql and {}/openapi.json", out.display(), out.display());
            Ok(())
        }
        Command::Keys { action: KeysAction::Rotate } => {
            let c = cli.config;
            let db = janua::storage::connect(&c.database_url, None).await?;
            janua::storage::migrate(&db).await?;
            let master = janua::security::master_key::open_master_key(
                &db,
                c.master_key.as_deref(),
                &c.master_key_file,
            )
            .await?;
            let kid = janua::security::tokens::KeyStore::rotate_with_refresh(
                &db,
                &master,
                c.access_token_ttl,
                c.key_refresh_interval,
            )
            .await?;
            // Every node signs with it within JANUA_KEY_REFRESH_INTERVAL (it polls the keys).
            println!("new signing key {kid}; previous keys stay published until their last token expires");
            Ok(())
        }
        Command::Bench(args) => janua::bench::run(args).await,
        Command::Admin { action: AdminAction::Create { email, password } } => {
            let app = janua::app::App::build_offline(cli.config).await?;
            let (id, created) = janua::services::bootstrap::create_admin(&app, &email, &password)
                .await
                .map_err(|e| anyhow::anyhow!(janua::services::bootstrap::describe(&e)))?;
            println!("{} administrator {email} ({id})", if created { "created" } else { "promoted" });
            Ok(())
        }
        Command::Seed { users } => {
            let app = janua::app::App::build_offline(cli.config).await?;
            let start = std::time::Instant::now();
            let n = janua::services::bootstrap::seed_users(&app, users)
                .await
                .map_err(|e| anyhow::anyhow!(janua::services::bootstrap::describe(&e)))?;
            println!("inserted {n} users in {:.1} s", start.elapsed().as_secs_f64());
            Ok(())
        }
    }
}
