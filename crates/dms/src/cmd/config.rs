//! `dms config show|get|set|path`.

use anyhow::Context as _;
use dms_node::config;

use super::Ctx;
use crate::cli::{ConfigCommand, Output};
use crate::output;

pub fn config(ctx: &Ctx, command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Path => {
            println!("{}", ctx.home.config_path().display());
            Ok(())
        }
        ConfigCommand::Show => {
            ctx.init_home()?;
            let effective = ctx.config()?;
            match ctx.output {
                Output::Json => output::json(&effective),
                Output::Table => {
                    print!("{}", toml::to_string_pretty(&effective)?);
                    Ok(())
                }
            }
        }
        ConfigCommand::Get { key } => {
            config::lookup(&key)?;
            let effective = toml::Table::try_from(ctx.config()?)?;
            let (section, name) = key.split_once('.').unwrap_or(("", &key));
            let value = effective
                .get(section)
                .and_then(|s| s.get(name))
                .with_context(|| format!("`{key}` has no value"))?;
            match (ctx.output, value) {
                (Output::Table, toml::Value::String(s)) => println!("{s}"),
                (Output::Table, other) => println!("{other}"),
                (Output::Json, other) => output::json(other)?,
            }
            Ok(())
        }
        ConfigCommand::Set { key, value } => {
            ctx.init_home()?;
            let path = ctx.home.config_path();
            config::set(&path, &key, &value)?;
            let var = config::env_var(&key);
            if std::env::var_os(&var).is_some() {
                eprintln!("note: {var} is set in this environment and overrides the file");
            }
            match ctx.output {
                Output::Json => output::json(&serde_json::json!({ "key": key, "value": value })),
                Output::Table => {
                    println!("{key} = {value}  (written to {})", path.display());
                    Ok(())
                }
            }
        }
    }
}
