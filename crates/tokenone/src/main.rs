//! The `tokenone` binary: command line, configuration loading and wiring. The only crate that
//! knows all the others.

mod export_cmd;

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
    /// The credential vault.
    Vault {
        #[command(subcommand)]
        command: VaultCommand,
    },
    /// Encrypted project exports.
    Export {
        #[command(subcommand)]
        command: ExportCommand,
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
enum VaultCommand {
    /// Re-wrap every sealed secret under a new master key while servers keep serving. With the
    /// key in a file (the default), the new key replaces it there and the old one is kept in
    /// `<file>.previous`; servers following the file switch by themselves. Prints the new key id.
    Rotate {
        /// Take the new key (32 bytes, base64) from this file instead of generating one. Needed
        /// when the key comes from `TOKENONE_MASTER_KEY` (see the README's procedure).
        #[arg(long)]
        new_key_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ExportCommand {
    /// Decrypt a `.t1x` export into `<name>.json` (passphrase from TOKENONE_EXPORT_PASSPHRASE or a
    /// prompt). A wrong passphrase or a damaged file is an error and writes nothing.
    Decrypt {
        /// The export file.
        file: PathBuf,
        /// Directory to write the bundle into (default: the current directory).
        #[arg(long)]
        out: Option<PathBuf>,
    },
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

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    disable_transparent_huge_pages();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // An idle blocking thread (Argon2id hashing: 19 MiB per login) gives its memory back when
        // it exits; tokio's default keeps it 10 s.
        .thread_keep_alive(std::time::Duration::from_secs(1))
        .build()?
        .block_on(run())
}

/// The gateway's heap is many small, short-lived buffers; transparent huge pages back sparse
/// 2 MiB ranges of it with whole huge pages, which grew RSS by up to 36 MiB under load
/// (bench/README.md). Turned off for this process only (Linux; ignored where unsupported).
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integer arguments and touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Config {
        command: ConfigCommand::PrintDefault,
    }) = &cli.command
    {
        print!("{}", Config::default_toml());
        return Ok(());
    }
    // Needs no configuration: it may run anywhere the file was copied to.
    if let Some(Command::Export {
        command: ExportCommand::Decrypt { file, out },
    }) = &cli.command
    {
        return export_cmd::decrypt(file, out.as_deref());
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
        Command::Vault {
            command: VaultCommand::Rotate { new_key_file },
        } => vault_rotate(cfg, new_key_file).await,
        Command::Config { .. } | Command::Export { .. } => Ok(()),
    }
}

/// `tokenone vault rotate`: checks that every sealed value opens, installs the new key (key file
/// mode), then re-wraps everything under it.
async fn vault_rotate(cfg: Config, new_key_file: Option<PathBuf>) -> anyhow::Result<()> {
    use std::collections::BTreeSet;
    use tokenone_core::repo::VaultRepo;
    use tokenone_core::services::vault::{rewrap_all, unreadable};
    use tokenone_core::vault::{previous_path, write_private_atomic, MasterKey, Vault};

    let env_mode = !cfg.vault.master_key.is_empty();
    let key_path = tokenone_server::master_key_path(&cfg);
    if !env_mode && !key_path.exists() {
        anyhow::bail!("no master key file at {}: nothing to rotate", key_path.display());
    }
    let new_key = match &new_key_file {
        Some(p) => {
            MasterKey::from_base64(&std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)
                .with_context(|| format!("the new key in {}", p.display()))?
        }
        None if env_mode => anyhow::bail!(
            "the master key comes from TOKENONE_MASTER_KEY, which this command cannot change: \
             pass --new-key-file (see the README's rotation procedure)"
        ),
        None => MasterKey::generate(),
    };
    let store = tokenone_store::SqlStore::connect(cfg.database.url.expose(), 2).await?;
    let old = tokenone_server::load_vault(&cfg)?;
    let old_keys = old.keys();
    let old_current = old.current_key();
    // Every key known so far still opens; the new one seals.
    let mut rotating = Vault::new(new_key.clone());
    for k in &old_keys {
        rotating = rotating.with_older(k.clone());
    }
    let bad = unreadable(&store, &rotating)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if !bad.is_empty() {
        anyhow::bail!(
            "{} sealed value(s) do not open with the configured master keys ({}); nothing changed",
            bad.len(),
            bad.join(", ")
        );
    }
    if !env_mode {
        // `.previous` keeps the outgoing key, and older ones only while a record still uses them.
        let in_use: BTreeSet<String> = store
            .sealed_records()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .iter()
            .filter_map(|r| Vault::key_id_of(&r.blob))
            .collect();
        let mut previous = String::new();
        for (i, k) in old_keys.iter().enumerate() {
            if k.id_hex() != new_key.id_hex() && (i == 0 || in_use.contains(&k.id_hex())) {
                previous.push_str(&k.to_base64());
                previous.push('\n');
            }
        }
        write_private_atomic(&previous_path(&key_path), previous.as_bytes())
            .with_context(|| format!("writing {}", previous_path(&key_path).display()))?;
        write_private_atomic(&key_path, new_key.to_base64().as_bytes())
            .with_context(|| format!("writing {}", key_path.display()))?;
    }
    let report = rewrap_all(&store, &rotating)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    store.close().await;
    println!(
        "{}",
        serde_json::json!({
            "keyId": new_key.id_hex(), "previousKeyId": old_current.id_hex(), "records": report.records,
            "rewrapped": report.rewrapped, "byKey": report.by_key, "unreadable": report.unreadable,
        })
    );
    eprintln!("new master key id: {}", new_key.id_hex());
    if env_mode {
        eprintln!(
            "Now restart every server with TOKENONE_MASTER_KEY set to the new key and \
             TOKENONE_VAULT__PREVIOUS_MASTER_KEYS set to the old one, then run this command again \
             with the same --new-key-file to re-wrap anything sealed meanwhile."
        );
    } else {
        eprintln!(
            "{} now holds the new key; the old one is kept in {} (keep it until every server has restarted).",
            key_path.display(),
            previous_path(&key_path).display()
        );
    }
    if !report.unreadable.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}
