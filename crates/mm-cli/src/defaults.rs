//! Defaults for the options the commands share (`--gateway`, `--service`), from the environment
//! and a config file, so that `mm` can be pointed at a gateway once rather than on every line.
//!
//! Precedence, highest first:
//!
//! 1. the command line (`--gateway gw1:5050`);
//! 2. the environment (`MM_GATEWAY`, `MM_SERVICE`);
//! 3. the config file: `$MM_CONFIG` if set (set and empty: no file), else
//!    `$XDG_CONFIG_HOME/mm/config.json`, else `~/.config/mm/config.json` — a JSON object such as
//!    `{"gateway": "gw1:5050", "service": "PRICES"}`; a file missing from the default location is
//!    not an error, one that `MM_CONFIG` names is;
//! 4. the built-in default (`127.0.0.1:5050`, `DEFAULT`).
//!
//! All of it goes into the command-line definition before parsing — environment variables as
//! clap's `env`, file values as the option's default — so `mm help COMMAND` shows the defaults
//! in effect. A new shared option is one more line in [`SETTINGS`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Command;

/// An option that takes its default from the environment and the config file.
struct Setting {
    /// The option's long name, the same in every command that has it.
    option: &'static str,
    /// The environment variable.
    env: &'static str,
    /// The key in the config file.
    key: &'static str,
    /// Commands this setting does not apply to.
    not_in: &'static [&'static str],
}

/// Every option with defaults from outside the command line.
const SETTINGS: &[Setting] = &[
    Setting {
        option: "gateway",
        env: "MM_GATEWAY",
        key: "gateway",
        not_in: &[],
    },
    // `mm bench` keeps its own service (BENCH) unless told otherwise: a benchmark must not flood
    // the service everyone else uses because MM_SERVICE happens to be set.
    Setting {
        option: "service",
        env: "MM_SERVICE",
        key: "service",
        not_in: &["bench"],
    },
];

/// The environment variable that names the config file.
pub const CONFIG_ENV: &str = "MM_CONFIG";

/// A loaded config file: its values by key.
#[derive(Debug, Default)]
pub struct ConfigFile {
    values: BTreeMap<String, String>,
}

impl ConfigFile {
    /// The file where [`CONFIG_ENV`] or the default location says, if there is one.
    pub fn load() -> anyhow::Result<ConfigFile> {
        match std::env::var_os(CONFIG_ENV) {
            Some(path) if path.is_empty() => Ok(ConfigFile::default()),
            Some(path) => ConfigFile::read(Path::new(&path)),
            None => match default_path() {
                Some(path) if path.exists() => ConfigFile::read(&path),
                _ => Ok(ConfigFile::default()),
            },
        }
    }

    /// Reads and checks the file at `path`.
    fn read(path: &Path) -> anyhow::Result<ConfigFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("config file {}", path.display()))?;
        ConfigFile::parse(&text).with_context(|| format!("config file {}", path.display()))
    }

    /// Parses the file's text: a JSON object of known keys with string values.
    fn parse(text: &str) -> anyhow::Result<ConfigFile> {
        let value: serde_json::Value = serde_json::from_str(text).context("not valid JSON")?;
        let serde_json::Value::Object(object) = value else {
            bail!("expected a JSON object such as {{\"gateway\": \"gw1:5050\"}}");
        };
        let mut values = BTreeMap::new();
        for (key, value) in object {
            if !SETTINGS.iter().any(|setting| setting.key == key) {
                let known: Vec<&str> = SETTINGS.iter().map(|setting| setting.key).collect();
                bail!("unknown key `{key}` (known: {})", known.join(", "));
            }
            let serde_json::Value::String(value) = value else {
                bail!("`{key}` must be a string");
            };
            values.insert(key, value);
        }
        Ok(ConfigFile { values })
    }

    /// The file's value for `key`.
    fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }
}

/// `$XDG_CONFIG_HOME/mm/config.json`, else `$HOME/.config/mm/config.json`.
pub fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|value| !value.is_empty())
                .map(|home| PathBuf::from(home).join(".config"))
        })?;
    Some(base.join("mm").join("config.json"))
}

/// The command line with every [`Setting`] wired in: its environment variable, and the file's
/// value as the option's default.
pub fn apply(mut command: Command, file: &ConfigFile) -> Command {
    let names: Vec<String> = command
        .get_subcommands()
        .map(|subcommand| subcommand.get_name().to_owned())
        .collect();
    for name in names {
        let settings: Vec<&Setting> = SETTINGS
            .iter()
            .filter(|setting| !setting.not_in.contains(&name.as_str()))
            .collect();
        command = command.mut_subcommand(&name, |subcommand| {
            apply_settings(subcommand, &settings, file)
        });
    }
    command
}

/// Applies `settings` to a command and all its subcommands.
fn apply_settings(mut command: Command, settings: &[&Setting], file: &ConfigFile) -> Command {
    let matching: Vec<(clap::Id, &Setting)> = command
        .get_arguments()
        .filter_map(|arg| {
            let long = arg.get_long()?;
            let setting = settings.iter().find(|setting| setting.option == long)?;
            Some((arg.get_id().clone(), *setting))
        })
        .collect();
    for (id, setting) in matching {
        command = command.mut_arg(id, |arg| {
            let arg = arg.env(setting.env);
            match file.get(setting.key) {
                Some(value) => arg.default_value(value.to_owned()),
                None => arg,
            }
        });
    }
    let names: Vec<String> = command
        .get_subcommands()
        .map(|subcommand| subcommand.get_name().to_owned())
        .collect();
    for name in names {
        command = command.mut_subcommand(&name, |subcommand| {
            apply_settings(subcommand, settings, file)
        });
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_an_object_of_known_string_keys() {
        let file = ConfigFile::parse(r#"{"gateway": "gw1:5050", "service": "PRICES"}"#).unwrap();
        assert_eq!(file.get("gateway"), Some("gw1:5050"));
        assert_eq!(file.get("service"), Some("PRICES"));
        for (text, error) in [
            (
                "{\"gatway\": \"x\"}",
                "unknown key `gatway` (known: gateway, service)",
            ),
            ("{\"gateway\": 5050}", "`gateway` must be a string"),
            ("[]", "expected a JSON object"),
            ("{", "not valid JSON"),
        ] {
            let message = format!("{:#}", ConfigFile::parse(text).unwrap_err());
            assert!(message.starts_with(error), "{text}: {message}");
        }
    }
}
