//! `dms key new|list|did|show`.

use anyhow::Context as _;
use dms_crypto::{KeyInfo, KeyPair, KeyType, Keystore};
use serde::Serialize;

use super::Ctx;
use crate::cli::{KeyCommand, Output};
use crate::{output, passphrase};

#[derive(Serialize)]
struct KeyView {
    #[serde(flatten)]
    info: KeyInfo,
    path: String,
}

pub fn key(ctx: &Ctx, command: KeyCommand) -> anyhow::Result<()> {
    let keystore = Keystore::open(ctx.home.keys_dir()).with_context(|| {
        format!("cannot open the keystore in {}", ctx.home.keys_dir().display())
    })?;
    let default_name = || -> anyhow::Result<String> { Ok(ctx.config()?.node.key) };
    match command {
        KeyCommand::New { name, key_type, if_missing } => {
            ctx.init_home()?;
            let name = name.map_or_else(default_name, Ok)?;
            if if_missing && keystore.exists(&name) {
                return show(ctx, &keystore, keystore.info(&name)?, "Kept");
            }
            if keystore.exists(&name) {
                anyhow::bail!(
                    "a key named '{name}' already exists ({}); keys are never overwritten — \
                     choose another name",
                    keystore.path(&name).display()
                );
            }
            let key_type: KeyType = key_type.parse()?;
            let passphrase = passphrase::read(&name, true)?;
            let pair = KeyPair::generate(key_type);
            let info = keystore.create(&name, &pair, &passphrase)?;
            show(ctx, &keystore, info, "Created")
        }
        KeyCommand::List => {
            let keys = keystore.list()?;
            match ctx.output {
                Output::Json => output::json(&keys),
                Output::Table if keys.is_empty() => {
                    println!(
                        "No keys in {}. Create one with `dms key new`.",
                        keystore.dir().display()
                    );
                    Ok(())
                }
                Output::Table => {
                    let rows: Vec<Vec<String>> = keys
                        .into_iter()
                        .map(|k| vec![k.name, k.key_type.to_string(), k.did.to_string()])
                        .collect();
                    output::table(&["name", "type", "did"], &rows);
                    Ok(())
                }
            }
        }
        KeyCommand::Did { name } => {
            let name = name.map_or_else(default_name, Ok)?;
            let info = keystore.info(&name)?;
            match ctx.output {
                Output::Json => output::json(&serde_json::json!({ "name": name, "did": info.did })),
                Output::Table => {
                    println!("{}", info.did);
                    Ok(())
                }
            }
        }
        KeyCommand::Show { name } => {
            let name = name.map_or_else(default_name, Ok)?;
            let info = keystore.info(&name)?;
            show(ctx, &keystore, info, "Key")
        }
    }
}

fn show(ctx: &Ctx, keystore: &Keystore, info: KeyInfo, verb: &str) -> anyhow::Result<()> {
    let path = keystore.path(&info.name).display().to_string();
    match ctx.output {
        Output::Json => output::json(&KeyView { info, path }),
        Output::Table => {
            println!("{verb} {} key '{}'", info.key_type, info.name);
            output::fields(&[
                ("DID", info.did.to_string()),
                ("Created", output::rfc3339_secs(info.created_at)),
                ("File", path),
            ]);
            Ok(())
        }
    }
}
