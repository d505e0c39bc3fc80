//! The `tokenone` binary: command line, configuration loading and wiring. The only crate that
//! knows all the others.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use tokenone_core::config::Config;
use tokenone_core::roles::TenantRole;
use tokenone_core::services::identity::NewAccount;
use tokenone_core::tokens::random_base62;

#[derive(Parser)]
#[command(name = "tokenone", version, about = "TokenOne LLM gateway")]
struct Cli {
    /// Configuration file (default: `TOKENONE_CONFIG`, else `tokenone.toml` if it exists).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run migrations, bootstrap the admin on an empty database, and serve (the default).
    Serve,
    /// Run database migrations only.
    Migrate,
    /// User administration.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// The signed ledger.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Add a user, owner of a new tenant.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// Name of the user's new tenant (default: "<name>'s organisation").
        #[arg(long)]
        tenant: Option<String>,
        /// Read the password from standard input (otherwise one is generated and printed).
        #[arg(long)]
        password_stdin: bool,
        /// Make the user a platform admin.
        #[arg(long)]
        platform_admin: bool,
    },
}

#[derive(Subcommand)]
enum LedgerCommand {
    /// Recompute every chain and signature and check each wallet against its postings; exit 1
    /// on the first bad entry.
    Verify,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the documented default configuration as TOML.
    PrintDefault,
}

fn load_config(cli_path: Option<PathBuf>) -> anyhow::Result<Config> {
    let path = cli_path
        .or_else(|| std::env::var_os("TOKENONE_CONFIG").map(PathBuf::from))
        .or_else(|| {
            let p = PathBuf::from("tokenone.toml");
            p.exists().then_some(p)
        });
    Ok(Config::load(path.as_deref(), std::env::vars())?)
}

fn init_logging(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.log.filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if cfg.log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Config {
        command: ConfigCommand::PrintDefault,
    }) = &cli.command
    {
        print!("{}", Config::default_toml());
        return Ok(());
    }
    let cfg = load_config(cli.config)?;
    init_logging(&cfg);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let listener = tokio::net::TcpListener::bind(&cfg.server.bind)
                .await
                .with_context(|| format!("binding {}", cfg.server.bind))?;
            tokenone_server::serve(cfg, listener, shutdown_signal()).await
        }
        Command::Migrate => {
            let store = tokenone_store::SqlStore::connect(cfg.database.url.expose(), 2).await?;
            store.close().await;
            eprintln!("migrations applied");
            Ok(())
        }
        Command::Admin {
            command:
                AdminCommand::Create {
                    email,
                    name,
                    tenant,
                    password_stdin,
                    platform_admin,
                },
        } => {
            let (password, generated) = if password_stdin {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s)?;
                (s.trim_end_matches(['\n', '\r']).to_string(), false)
            } else {
                (random_base62(24), true)
            };
            let state = tokenone_server::build_state(cfg).await?;
            let user = state
                .identity
                .create_account(NewAccount {
                    email: email.clone(),
                    password: password.clone(),
                    name,
                    tenant_name: tenant,
                    tenant_role: TenantRole::Owner,
                    platform_admin,
                })
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            eprintln!("created user {} ({}) in tenant {}", user.email, user.id, user.tenant_id);
            if generated {
                eprintln!("password: {password}");
            }
            Ok(())
        }
        Command::Ledger {
            command: LedgerCommand::Verify,
        } => {
            let state = tokenone_server::build_state(cfg).await?;
            let r = state.ledger.verify().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "{}",
                serde_json::json!({
                    "ok": r.ok, "tenantsChecked": r.tenants_checked, "entriesChecked": r.entries_checked,
                    "firstBad": r.first_bad,
                })
            );
            if !r.ok {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Config { .. } => Ok(()),
    }
}
