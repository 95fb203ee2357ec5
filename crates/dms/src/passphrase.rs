//! The keystore passphrase: from `DMS_PASSPHRASE`, from the file `DMS_PASSPHRASE_FILE`
//! names, from the systemd credential `passphrase` (`LoadCredential=`, read from
//! `$CREDENTIALS_DIRECTORY`), or asked for on the terminal. A file's one trailing line
//! end is not part of the passphrase.

use std::io::IsTerminal;

use anyhow::{Context, bail};
use zeroize::Zeroizing;

/// The environment variable that supplies the passphrase non-interactively.
pub const ENV: &str = "DMS_PASSPHRASE";

/// The environment variable naming a file that holds the passphrase.
pub const FILE_ENV: &str = "DMS_PASSPHRASE_FILE";

/// The passphrase file: `DMS_PASSPHRASE_FILE`, else the systemd credential.
fn file() -> Option<std::path::PathBuf> {
    if let Some(path) = std::env::var_os(FILE_ENV) {
        return Some(path.into());
    }
    let credentials = std::env::var_os("CREDENTIALS_DIRECTORY")?;
    let path = std::path::Path::new(&credentials).join("passphrase");
    path.exists().then_some(path)
}

/// Reads the passphrase for key `name`. With `confirm`, a prompt asks twice and an
/// empty passphrase is refused (used when creating a key).
pub fn read(name: &str, confirm: bool) -> anyhow::Result<Zeroizing<String>> {
    let given = match std::env::var(ENV) {
        Ok(value) => Some(Zeroizing::new(value)),
        // Read only when the variable does not give it.
        Err(_) => match file() {
            Some(path) => {
                let text = Zeroizing::new(std::fs::read_to_string(&path).with_context(|| {
                    format!("cannot read the passphrase file {} ({FILE_ENV})", path.display())
                })?);
                let line = text.strip_suffix('\n').unwrap_or(&text);
                Some(Zeroizing::new(line.strip_suffix('\r').unwrap_or(line).to_string()))
            }
            None => None,
        },
    };
    if let Some(value) = given {
        if confirm && value.is_empty() {
            bail!("the passphrase ({ENV} or {FILE_ENV}) is empty: a new key needs a non-empty one");
        }
        return Ok(value);
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "no passphrase for key '{name}': set {ENV} (or {FILE_ENV} to a file holding it), \
             run in a terminal to be asked, or keep the key unlocked for a while with \
             `dms agent start`"
        );
    }
    let first = Zeroizing::new(
        rpassword::prompt_password(format!("Passphrase for key '{name}': "))
            .context("cannot read the passphrase from the terminal")?,
    );
    if confirm {
        if first.is_empty() {
            bail!("a new key needs a non-empty passphrase");
        }
        let second = Zeroizing::new(
            rpassword::prompt_password("Repeat the passphrase: ")
                .context("cannot read the passphrase from the terminal")?,
        );
        if *first != *second {
            bail!("the passphrases do not match; nothing was created");
        }
    }
    Ok(first)
}
