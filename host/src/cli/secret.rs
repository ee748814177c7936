//! `codeai secret set|list|delete|rotate-key`: the secrets `env("NAME")` reads in a tenant's
//! jobs. A value is read from standard input (never from the command line, which other users of
//! the machine can see) and is never printed.

use super::exec::open_database;
use crate::store::platform::DEFAULT_TENANT;
use crate::store::secrets::{self, Keyring};
use anyhow::Context as _;
use std::io::Read as _;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub(super) struct SecretArgs {
    #[command(subcommand)]
    action: SecretAction,
}

#[derive(Debug, clap::Subcommand)]
enum SecretAction {
    /// Set a secret from standard input (one trailing newline is dropped):
    /// `printf %s "$TOKEN" | codeai secret set --tenant acme API_TOKEN`.
    Set {
        /// The tenant whose jobs read it (default: the operator's own).
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
        /// Like an environment variable: A-Z, a-z, 0-9 and `_`, not starting with a digit.
        name: String,
    },
    /// List a tenant's secrets: names and when each was set, never values.
    List {
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
    },
    /// Delete a secret.
    Delete {
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
        name: String,
    },
    /// Re-encrypt every tenant's secrets under CODEAI_SECRET_KEY (old keys in
    /// CODEAI_SECRET_KEY_OLD).
    RotateKey,
}

/// Standard input without one trailing newline (`\n` or `\r\n`).
fn read_value() -> anyhow::Result<String> {
    let mut value = String::new();
    std::io::stdin()
        .read_to_string(&mut value)
        .context("failed to read the secret's value from standard input (UTF-8 text)")?;
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    Ok(value)
}

pub(super) fn run(args: &SecretArgs) -> anyhow::Result<ExitCode> {
    let keys = Keyring::from_env().map_err(anyhow::Error::msg)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let db = open_database().await?;
        match &args.action {
            SecretAction::Set { tenant, name } => {
                if !secrets::valid_name(name) {
                    anyhow::bail!(secrets::SecretError::BadName(name.clone()));
                }
                let value = read_value()?;
                let (_, created) = secrets::put(&db, &keys, tenant, name, &value).await?;
                println!(
                    "secret {name} of tenant {tenant} {}",
                    if created { "created" } else { "replaced" }
                );
            }
            SecretAction::List { tenant } => {
                use super::format::{Align, Table};
                let mut table = Table::new(&[("NAME", Align::Left), ("UPDATED", Align::Left)]);
                for s in secrets::list(&db, tenant).await? {
                    table.row(vec![
                        s.name,
                        s.updated_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                    ]);
                }
                print!("{}", table.render());
            }
            SecretAction::Delete { tenant, name } => {
                if !secrets::delete(&db, tenant, name).await? {
                    anyhow::bail!("tenant `{tenant}` has no secret `{name}`");
                }
                println!("secret {name} of tenant {tenant} deleted");
            }
            SecretAction::RotateKey => {
                let done = secrets::rotate(&db, &keys).await?;
                println!(
                    "{} secrets re-encrypted under key {}, {} were under it already",
                    done.reencrypted,
                    keys.current_id()?,
                    done.current
                );
            }
        }
        db.close().await;
        Ok(ExitCode::SUCCESS)
    })
}
