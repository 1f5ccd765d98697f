//! `[[apps]]`: the client apps the bot recommends per platform, with their download links.

use serde::{Deserialize, Serialize};
use url::Url;

use super::check::Check;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApp {
    platform: String,
    name: String,
    url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Android,
    Ios,
    Windows,
    Macos,
    Linux,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClientApp {
    pub platform: Platform,
    pub name: String,
    pub url: Url,
}

pub(super) fn parse_apps(c: &mut Check<'_>, raw: &[RawApp]) -> Vec<ClientApp> {
    let mut apps = Vec::new();
    for (i, a) in raw.iter().enumerate() {
        let key = format!("apps[{i}]");
        let platform = match a.platform.as_str() {
            "android" => Some(Platform::Android),
            "ios" => Some(Platform::Ios),
            "windows" => Some(Platform::Windows),
            "macos" => Some(Platform::Macos),
            "linux" => Some(Platform::Linux),
            other => {
                c.fail(
                    &format!("{key}.platform"),
                    format!("{other:?} is not a platform"),
                    "use android, ios, windows, macos or linux",
                );
                None
            }
        };
        let url = match Url::parse(&a.url) {
            Ok(u) if u.scheme() == "https" => Some(u),
            _ => {
                c.fail(
                    &format!("{key}.url"),
                    format!("{:?} is not an https URL", a.url),
                    "link the app's store or download page with https://",
                );
                None
            }
        };
        if a.name.trim().is_empty() {
            c.fail(&format!("{key}.name"), "is empty", "give the app's name");
        }
        if let (Some(platform), Some(url)) = (platform, url) {
            apps.push(ClientApp {
                platform,
                name: a.name.clone(),
                url,
            });
        }
    }
    apps
}
