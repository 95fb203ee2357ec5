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
            let effective = redacted(toml::Table::try_from(ctx.config()?)?);
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
            let effective = redacted(toml::Table::try_from(ctx.config()?)?);
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

/// `config` with every set secret (`config::SECRET_KEYS`) shown as `<redacted>`.
fn redacted(mut config: toml::Table) -> toml::Table {
    for key in config::SECRET_KEYS {
        let Some((section, name)) = key.split_once('.') else { continue };
        let value = config.get_mut(section).and_then(|s| s.get_mut(name));
        if let Some(value) = value.filter(|v| v.as_str().is_some_and(|s| !s.is_empty())) {
            *value = toml::Value::String("<redacted>".into());
        }
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_never_printed_and_unset_ones_stay_empty() {
        let mut config = dms_node::Config::default();
        config.storage.access_key_id = "AKID".into();
        config.storage.secret_access_key = "very-secret".into();
        let shown = redacted(toml::Table::try_from(config).expect("a table"));
        let text = toml::to_string(&shown).expect("TOML");
        assert!(!text.contains("very-secret"), "{text}");
        assert_eq!(shown["storage"]["secret_access_key"].as_str(), Some("<redacted>"));
        assert_eq!(shown["storage"]["session_token"].as_str(), Some(""));
        assert_eq!(shown["storage"]["access_key_id"].as_str(), Some("AKID"));
    }
}
