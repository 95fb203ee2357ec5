//! `dms-node`: the configuration file `$DMS_HOME/config.toml`, read by `dms run` and
//! `dms config`, and edited in place by `dms config set`.

use std::path::PathBuf;
use std::sync::OnceLock;

use dms_node::config::{self, Config};

use crate::Target;

/// [`config::load_with_env`] (no environment), [`Config::validate`] and [`config::set`].
pub const CONFIG: Target = Target {
    name: "config",
    check: config_file,
    generate: None,
    dictionary: &[
        "[node]\n",
        "[api]\n",
        "[network]\n",
        "[store]\n",
        "[log]\n",
        "[deployment]\n",
        "[quotas]\n",
        " = ",
        "\"",
        "'''",
        "true",
        "\"30s\"",
        "\"1h 30m\"",
        "[[",
        "]]",
        "{ ",
        " }",
        "inf",
        "nan",
        "0x10",
        "1979-05-27T07:32:00Z",
        "log.level = ",
        "# c\n",
    ],
};

fn dir() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temporary directory"))
}

fn path(name: &str) -> PathBuf {
    dir().path().join(name)
}

/// Loads the bytes as the configuration file; an accepted configuration is checked
/// (`validate`, the network section), written back as TOML it loads to itself, and
/// when it is valid, `dms config set log.level debug` on the file changes that key and
/// nothing else.
pub fn config_file(bytes: &[u8]) -> bool {
    let file = path("config.toml");
    std::fs::write(&file, bytes).expect("the configuration file is written");
    let Ok(loaded) = config::load_with_env(&file, |_| None) else { return false };
    let valid = loaded.validate().is_ok();
    let _ = loaded.network.to_network();

    let rendered = toml::to_string(&loaded).expect("a configuration serializes to TOML");
    let copy = path("rendered.toml");
    std::fs::write(&copy, &rendered).expect("the rendered file is written");
    match config::load_with_env(&copy, |_| None) {
        Ok(again) => assert_eq!(again, loaded, "a configuration written out loads to itself"),
        Err(error) => {
            panic!("a loaded configuration, written out, does not load: {error}\n{rendered}")
        }
    }

    if valid && let Ok(edited) = config::set(&file, "log.level", "debug") {
        let mut expected: Config = loaded;
        expected.log.level = "debug".into();
        assert_eq!(edited, expected, "`dms config set` changes the key it names, only it");
        let reread = config::load_with_env(&file, |_| None).expect("an edited file loads");
        assert_eq!(reread, expected, "the edited file holds what `set` returned");
    }
    true
}

/// Seeds: the commented default file `dms` writes on first use, and a small edited one.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let default = config::default_file();
    let edited = "[api]\naddr = \"127.0.0.1:9999\"\n\n[log]\nlevel = \"debug\"\nformat = \"json\"\n\n\
                  [deployment]\nbid_window = \"2s\"\nprice_per_hour = 0.25\n";
    vec![("default.toml", default.into_bytes()), ("edited.toml", edited.as_bytes().to_vec())]
}
