//! Reading one variable at a time while collecting every problem, and the value shapes
//! several setting groups share (bounded durations, http(s) URLs).

use std::time::Duration;

use url::Url;

use super::{Env, SettingLine};
use crate::config::ConfigError;
use crate::config::duration::{format_duration, parse_duration};

/// Collects problems while reading variables, so one run reports all of them.
pub(super) struct Reader<'a> {
    pub(super) env: &'a Env,
    pub(super) errors: Vec<ConfigError>,
    pub(super) report: Vec<SettingLine>,
}

impl<'a> Reader<'a> {
    pub(super) fn new(env: &'a Env) -> Self {
        Reader {
            env,
            errors: Vec::new(),
            report: Vec::new(),
        }
    }

    pub(super) fn fail(&mut self, key: &str, problem: String, fix: &str) {
        self.errors.push(ConfigError::new(key, problem, fix));
    }

    /// Reads `key` with `parse`, or `default` when unset. `show` renders the value for the
    /// report (secrets must mask themselves there).
    pub(super) fn read<T>(
        &mut self,
        key: &str,
        default: Option<&str>,
        fix: &str,
        parse: impl Fn(&str) -> Result<T, String>,
        show: impl Fn(&T) -> String,
    ) -> Option<T> {
        let (raw, source) = match (self.env.get(key), default) {
            (Some(v), _) => (v.to_owned(), "set"),
            (None, Some(d)) => (d.to_owned(), "default"),
            (None, None) => return None,
        };
        match parse(raw.trim()) {
            Ok(v) => {
                self.report.push(SettingLine {
                    key: key.to_owned(),
                    value: show(&v),
                    source,
                });
                Some(v)
            }
            Err(problem) => {
                self.fail(key, problem, fix);
                None
            }
        }
    }

    pub(super) fn required<T>(
        &mut self,
        key: &str,
        fix: &str,
        parse: impl Fn(&str) -> Result<T, String>,
        show: impl Fn(&T) -> String,
    ) -> Option<T> {
        if self.env.get(key).is_none() {
            self.fail(key, "is not set".to_owned(), fix);
            return None;
        }
        self.read(key, None, fix, parse, show)
    }
}

pub(super) fn parse_duration_var(text: &str) -> Result<Duration, String> {
    parse_duration(text)
}

pub(super) fn parse_http_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("{text:?} is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{text:?} is not an http(s) URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{text:?} must not have a query or fragment"));
    }
    Ok(url)
}

pub(super) fn duration_between(
    min: Duration,
    max: Duration,
) -> impl Fn(&str) -> Result<Duration, String> {
    move |t| {
        let d = parse_duration(t)?;
        if d < min || d > max {
            return Err(format!(
                "{t:?} is outside {}..{}",
                format_duration(min),
                format_duration(max)
            ));
        }
        Ok(d)
    }
}
