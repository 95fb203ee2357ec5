//! The keystore passphrase: from `DMS_PASSPHRASE`, or asked for on the terminal.

use std::io::IsTerminal;

use anyhow::{Context, bail};
use zeroize::Zeroizing;

/// The environment variable that supplies the passphrase non-interactively.
pub const ENV: &str = "DMS_PASSPHRASE";

/// Reads the passphrase for key `name`. With `confirm`, a prompt asks twice and an
/// empty passphrase is refused (used when creating a key).
pub fn read(name: &str, confirm: bool) -> anyhow::Result<Zeroizing<String>> {
    if let Ok(value) = std::env::var(ENV) {
        if confirm && value.is_empty() {
            bail!("{ENV} is empty: a new key needs a non-empty passphrase");
        }
        return Ok(Zeroizing::new(value));
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "no passphrase for key '{name}': set {ENV}, run in a terminal to be asked, or keep \
             the key unlocked for a while with `dms agent start`"
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
