//! Database settings: where the data lives (`DATABASE_URL`) and the pool's size and
//! timeouts. Every command that touches the database reads these, so they can be read alone.

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::Env;
use super::reader::{Reader, parse_duration_var};
use crate::config::ConfigErrors;
use crate::config::duration::format_duration;
use crate::config::secret::Secret;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/tollgate.db";

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A SQLite file; its folder is created at start.
    Sqlite { path: PathBuf },
    /// A PostgreSQL server; the URL may carry a password, so it is a secret.
    Postgres { url: Secret<String> },
}

impl DatabaseUrl {
    pub fn parse(text: &str) -> Result<DatabaseUrl, String> {
        let hint = "use sqlite://PATH (e.g. sqlite://data/tollgate.db) or postgres://USER:PASSWORD@HOST:5432/DATABASE";
        if let Some(rest) = text
            .strip_prefix("sqlite://")
            .or_else(|| text.strip_prefix("sqlite:"))
        {
            let path = rest.split('?').next().unwrap_or_default();
            if path.is_empty() || path.starts_with(':') {
                return Err(format!(
                    "{text:?} names no file: an in-memory database would lose every payment on restart; {hint}"
                ));
            }
            return Ok(DatabaseUrl::Sqlite {
                path: PathBuf::from(path),
            });
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            let parsed = Url::parse(text)
                .map_err(|e| format!("{} is not a valid URL ({e}); {hint}", mask_url(text)))?;
            if parsed.host_str().is_none_or(str::is_empty) {
                return Err(format!("{} has no host; {hint}", mask_url(text)));
            }
            return Ok(DatabaseUrl::Postgres {
                url: Secret::new(text.to_owned()),
            });
        }
        Err(format!(
            "{} is neither a SQLite nor a PostgreSQL URL; {hint}",
            mask_url(text)
        ))
    }

    /// A printable form: the PostgreSQL password is masked.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseUrl::Sqlite { path } => format!("sqlite://{}", path.display()),
            DatabaseUrl::Postgres { url } => mask_url(url.expose()),
        }
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self, DatabaseUrl::Sqlite { .. })
    }
}

/// Replaces the password of a URL with `***` (and keeps everything else readable).
pub fn mask_url(text: &str) -> String {
    match Url::parse(text) {
        Ok(mut u) if u.password().is_some() => {
            // Setting a password only fails for URLs that cannot have one, excluded above.
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        // Unparseable: show only the scheme, the rest may hold credentials.
        Err(_) => match text.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://<unparseable>"),
            None => "<unparseable>".to_owned(),
        },
    }
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: DatabaseUrl,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    pub statement_timeout: Duration,
}

/// Reads the variables every command needs to reach the database.
pub fn database_settings(env: &Env) -> Result<DatabaseSettings, ConfigErrors> {
    let mut r = Reader::new(env);
    let db = read_database(&mut r);
    match (db, r.errors.is_empty()) {
        (Some(db), true) => Ok(db),
        _ => Err(ConfigErrors(r.errors)),
    }
}

pub(super) fn read_database(r: &mut Reader<'_>) -> Option<DatabaseSettings> {
    let url = r.read(
        "DATABASE_URL",
        Some(DEFAULT_DATABASE_URL),
        "set DATABASE_URL=sqlite://data/tollgate.db or DATABASE_URL=postgres://USER:PASSWORD@HOST:5432/DATABASE",
        DatabaseUrl::parse,
        DatabaseUrl::redacted,
    );
    let default_pool = match &url {
        Some(DatabaseUrl::Postgres { .. }) => "16",
        _ => "8",
    };
    let max_connections = r.read(
        "DATABASE_MAX_CONNECTIONS",
        Some(default_pool),
        "set DATABASE_MAX_CONNECTIONS to a pool size from 2 to 1000, e.g. 16",
        |t| match t.parse::<u32>() {
            Ok(n) if (2..=1000).contains(&n) => Ok(n),
            _ => Err(format!("{t:?} is not a pool size from 2 to 1000")),
        },
        u32::to_string,
    );
    let fix_timeout = "use a duration with a unit between 100ms and 10m, e.g. 5s";
    let bounded = |t: &str| {
        let d = parse_duration_var(t)?;
        if d < Duration::from_millis(100) || d > Duration::from_secs(600) {
            return Err(format!("{t:?} is outside 100ms..10m"));
        }
        Ok(d)
    };
    let acquire_timeout = r.read(
        "DATABASE_ACQUIRE_TIMEOUT",
        Some("5s"),
        fix_timeout,
        bounded,
        |d| format_duration(*d),
    );
    let statement_timeout = r.read(
        "DATABASE_STATEMENT_TIMEOUT",
        Some("30s"),
        fix_timeout,
        bounded,
        |d| format_duration(*d),
    );
    Some(DatabaseSettings {
        url: url?,
        max_connections: max_connections?,
        acquire_timeout: acquire_timeout?,
        statement_timeout: statement_timeout?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::env::testing::errors;

    #[test]
    fn postgres_password_is_masked() {
        let url = DatabaseUrl::parse("postgres://app:pa55@db.internal:5432/tollgate").unwrap();
        assert_eq!(
            url.redacted(),
            "postgres://app:***@db.internal:5432/tollgate"
        );
        let e = errors(&[("DATABASE_URL", "postgres://app:pa55@/x")]);
        assert!(!e.contains("pa55"), "{e}");
    }
}
