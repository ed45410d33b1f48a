use clap::Parser;
use janua::cli::{Cli, Command, KeysAction};
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.config.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => janua::app::App::build(cli.config).await?.run().await,
        Command::Migrate => {
            let db = janua::storage::connect(&cli.config.database_url, None).await?;
            janua::storage::migrate(&db).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Schema { out } => {
            janua::write_schema_files(&out).await?;
            println!(
                "wrote {}/schema.graphql and {}/openapi.json",
                out.display(),
                out.display()
            );
            Ok(())
        }
        Command::Keys {
            action: KeysAction::Rotate,
        } => {
            let c = cli.config;
            let db = janua::storage::connect(&c.database_url, None).await?;
            janua::storage::migrate(&db).await?;
            let master =
                janua::security::secrets::MasterKey::load(c.master_key.as_deref(), &c.master_key_file)?;
            let kid = janua::security::tokens::KeyStore::rotate(&db, &master, c.access_token_ttl).await?;
            println!("new signing key {kid}; previous keys stay published until their last token expires");
            Ok(())
        }
        Command::Bench(args) => janua::bench::run(args).await,
    }
}
