//! Configuration: deployment settings from the environment, the catalog from TOML.
//!
//! Startup validates everything before touching the database or the network: a required
//! dependency that is misconfigured must fail loudly with the key to fix (docs/reliability.md A10),
//! never fall back silently. Errors are collected so one run shows every problem.

pub mod catalog;
pub mod duration;
pub mod env;
pub mod secret;

use std::fmt;
use std::path::Path;

pub use catalog::{Catalog, Language};
pub use env::{
    DatabaseSettings, DatabaseUrl, Deployment, Env, FeedBase, FeedBaseSource, IntakeMode,
    LogFormat, LogSettings, NodeSettings, PipelineSettings,
};
pub use secret::Secret;

/// One problem: which key, what is wrong with it, how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub problem: String,
    pub fix: String,
}

impl ConfigError {
    pub fn new(key: &str, problem: String, fix: &str) -> Self {
        ConfigError {
            key: key.to_owned(),
            problem,
            fix: fix.to_owned(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}\n  fix: {}", self.key, self.problem, self.fix)
    }
}

/// Every problem found in one validation pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The whole validated configuration of a running service.
#[derive(Debug, Clone)]
pub struct Config {
    pub deployment: Deployment,
    pub catalog: Catalog,
    /// The environment part of the effective-configuration report.
    pub env_report: Vec<env::SettingLine>,
}

impl Config {
    /// Reads the environment and the catalog file it names; reports every problem of both.
    pub fn load(env: &Env) -> Result<Config, ConfigErrors> {
        let deployment = env::deployment(env);
        let path = env
            .get("TOLLGATE_CONFIG")
            .unwrap_or("tollgate.toml")
            .to_owned();
        let catalog = load_catalog(Path::new(&path), env);
        match (deployment, catalog) {
            (Ok((deployment, env_report)), Ok(catalog)) => Ok(Config {
                deployment,
                catalog,
                env_report,
            }),
            (d, c) => {
                let mut all = Vec::new();
                if let Err(e) = d {
                    all.extend(e.0);
                }
                if let Err(e) = c {
                    all.extend(e.0);
                }
                Err(ConfigErrors(all))
            }
        }
    }

    /// The effective configuration with secrets redacted, as `check-config` prints it.
    pub fn report(&self) -> String {
        let mut out = String::from("# Environment (secrets redacted)\n");
        let width = self
            .env_report
            .iter()
            .map(|l| l.key.len())
            .max()
            .unwrap_or(0);
        for l in &self.env_report {
            out.push_str(&format!("{:width$} = {}  ({})\n", l.key, l.value, l.source));
        }
        out.push_str(&format!(
            "\n# Catalog: {}\n",
            self.deployment.config_path.display()
        ));
        match toml::to_string(&self.catalog) {
            Ok(text) => out.push_str(&text),
            Err(e) => out.push_str(&format!("(cannot render the catalog: {e})\n")),
        }
        out
    }
}

/// Reads and validates the catalog file.
pub fn load_catalog(path: &Path, env: &Env) -> Result<Catalog, ConfigErrors> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        let fix = if e.kind() == std::io::ErrorKind::NotFound {
            "copy config/tollgate.example.toml to tollgate.toml and edit it, or set TOLLGATE_CONFIG to your file's path"
        } else {
            "make the file readable by the service's user"
        };
        ConfigErrors(vec![ConfigError::new(
            "TOLLGATE_CONFIG",
            format!("cannot read the catalog file {shown:?}: {e}"),
            fix,
        )])
    })?;
    catalog::parse_catalog(&text, &shown, env)
}

#[cfg(test)]
mod tests {
    use super::env::ENV_VARS;

    const README: &str = include_str!("../../../../README.md");
    const EXAMPLE: &str = include_str!("../../../../config/tollgate.example.toml");

    /// Values the README documents as a whole rather than key by key.
    const DOCUMENTED_WHOLE: &[&str] = &[
        "prices",
        "title",
        "description",
        "link",
        "stars_packages",
        "levels",
    ];

    /// Key paths of a TOML document: `bot.name`, `plans[].id`, `balance.stars_packages`.
    fn key_paths(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
        for (k, v) in table {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            if DOCUMENTED_WHOLE.contains(&k.as_str()) {
                out.push(path);
                continue;
            }
            match v {
                toml::Value::Table(t) => key_paths(&path, t, out),
                toml::Value::Array(items) if items.iter().all(toml::Value::is_table) => {
                    for item in items.iter().filter_map(toml::Value::as_table) {
                        key_paths(&format!("{path}[]"), item, out);
                    }
                }
                _ => out.push(path),
            }
        }
    }

    #[test]
    fn readme_documents_every_setting() {
        for (key, _) in ENV_VARS {
            assert!(
                README.contains(&format!("`{key}`")),
                "README lacks the variable {key}"
            );
        }
        let doc: toml::Table = toml::from_str(EXAMPLE).unwrap();
        let mut paths = Vec::new();
        key_paths("", &doc, &mut paths);
        paths.sort();
        paths.dedup();
        assert!(paths.len() > 20, "{paths:?}");
        for path in paths {
            // `apps[].platform` is documented in the `apps[]` row.
            let documented = README.contains(&format!("`{path}`"))
                || path
                    .split_once("[].")
                    .is_some_and(|(table, _)| README.contains(&format!("`{table}[]`")));
            assert!(documented, "README lacks the catalog key {path}");
        }
    }
}
