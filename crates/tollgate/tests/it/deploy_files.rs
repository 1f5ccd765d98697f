//! The deploy files agree with the code: `.env.example` documents every variable the service
//! reads (the list is `config::env::ENV_VARS`, the same one that refuses unknown `TOLLGATE_*`
//! names) and nothing else, its example values are accepted, `compose.yaml` sets only known
//! variables and starts Tollgate after a healthy PostgreSQL, and the systemd unit is hardened
//! and passes `systemd-analyze verify` where that tool exists (skipped loudly elsewhere).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use tollgate::config::Env;
use tollgate::config::env::{ENV_VARS, deployment};

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// Variables only tests set; operators never do.
fn test_only(description: &str) -> bool {
    description.starts_with("tests only") || description.starts_with("test harness only")
}

/// `.env.example`'s variables: set (`KEY=v`) or shown commented out (`#KEY=v`), with values.
fn env_example() -> BTreeMap<String, (bool, String)> {
    let text = std::fs::read_to_string(repo(".env.example")).unwrap();
    text.lines()
        .filter_map(|line| {
            let (set, rest) = match line.strip_prefix('#') {
                Some(r) => (false, r),
                None => (true, line),
            };
            let (key, value) = rest.split_once('=')?;
            let ok = !key.is_empty()
                && key
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            ok.then(|| (key.to_owned(), (set, value.to_owned())))
        })
        .collect()
}

#[test]
fn env_example_documents_every_variable_and_only_those() {
    let documented = env_example();
    let known: BTreeSet<&str> = ENV_VARS.iter().map(|(k, _)| *k).collect();
    for (key, description) in ENV_VARS {
        if test_only(description) {
            assert!(
                !documented.contains_key(*key),
                "{key} is for tests only; keep it out of .env.example"
            );
        } else if let Some(prefix) = key.strip_suffix("<NAME>") {
            // A family (the flag seeds): each member is documented under its own name.
            assert!(
                documented.keys().any(|k| k.starts_with(prefix)),
                ".env.example does not document any {key}"
            );
        } else {
            assert!(
                documented.contains_key(*key),
                ".env.example does not document {key}"
            );
        }
    }
    // A member of a family is known when its NAME is one the service takes.
    let member = |key: &str| {
        key.strip_prefix("TOLLGATE_FLAG_")
            .is_some_and(|name| tollgate::flags::Flag::parse(&name.to_ascii_lowercase()).is_some())
    };
    for key in documented.keys() {
        assert!(
            known.contains(key.as_str()) || member(key) || key == "POSTGRES_PASSWORD",
            ".env.example names {key}, which the service does not read"
        );
    }
    // The example values are accepted as they are (on the default SQLite database).
    let mut env = Env::from_pairs([("BOT_TOKEN", "123456789:AAbbCCddEEffGGhhIIjjKKllMMnnOOppQQr")]);
    for (key, (_, value)) in &documented {
        if !value.is_empty()
            && (known.contains(key.as_str()) || member(key))
            && key != "TOLLGATE_CONFIG"
        {
            env.set(key, value);
        }
    }
    env.set("WEBHOOK_SECRET", "0123456789abcdef0123456789abcdef");
    if let Err(e) = deployment(&env) {
        panic!(".env.example's example values are refused:\n{e}");
    }
}

#[test]
fn compose_runs_tollgate_after_a_healthy_postgres_with_known_variables() {
    let text = std::fs::read_to_string(repo("compose.yaml")).unwrap();
    let compose: serde_yaml::Value = serde_yaml::from_str(&text).expect("compose.yaml is YAML");
    let services = &compose["services"];
    let tollgate = &services["tollgate"];
    let postgres = &services["postgres"];
    assert!(
        postgres["healthcheck"]["test"].is_sequence(),
        "postgres has a health check"
    );
    assert_eq!(
        tollgate["depends_on"]["postgres"]["condition"].as_str(),
        Some("service_healthy"),
        "tollgate waits for a healthy postgres"
    );
    assert_eq!(
        tollgate["env_file"].as_str(),
        Some(".env"),
        "secrets come from .env"
    );
    let known: BTreeSet<&str> = ENV_VARS.iter().map(|(k, _)| *k).collect();
    let environment = tollgate["environment"]
        .as_mapping()
        .expect("tollgate.environment is a map");
    for (key, value) in environment {
        let key = key.as_str().unwrap();
        assert!(
            known.contains(key),
            "compose.yaml sets {key}, which the service does not read"
        );
        if key == "DATABASE_URL" {
            assert!(value.as_str().unwrap().starts_with("postgres://"));
        }
    }
    let health = tollgate["healthcheck"]["test"]
        .as_sequence()
        .expect("tollgate has a health check");
    assert!(
        health.iter().any(|v| v.as_str() == Some("healthcheck")),
        "{health:?}"
    );
    // Named volumes, declared at the top level.
    let declared = compose["volumes"].as_mapping().expect("top-level volumes");
    for service in [tollgate, postgres] {
        for v in service["volumes"].as_sequence().unwrap() {
            let name = v.as_str().unwrap().split(':').next().unwrap();
            if !name.starts_with('.') && !name.starts_with('/') {
                assert!(declared.contains_key(name), "volume {name} is not declared");
            }
        }
    }
    // Every ${VAR} compose reads from .env is documented there.
    let documented = env_example();
    for part in text.split("${").skip(1) {
        let var = part.split([':', '}', '-']).next().unwrap();
        if var != "TOLLGATE_IMAGE" && var != "POSTGRES_IMAGE" {
            assert!(
                documented.contains_key(var),
                "compose.yaml reads ${{{var}}}, which .env.example does not show"
            );
        }
    }
}

#[test]
fn the_systemd_unit_is_hardened_and_verifies() {
    let unit = std::fs::read_to_string(repo("deploy/tollgate.service")).unwrap();
    for line in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "StateDirectory=tollgate",
        "NoNewPrivileges=yes",
        "Restart=on-failure",
        "ExecStart=/usr/local/bin/tollgate run",
    ] {
        assert!(
            unit.lines().any(|l| l == line),
            "deploy/tollgate.service lacks {line}"
        );
    }
    let Ok(analyze) = which("systemd-analyze") else {
        eprintln!("\n*** SKIPPING systemd-analyze verify: systemd-analyze is not installed.\n");
        return;
    };
    // Verify checks that ExecStart exists: point it at the binary under test.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tollgate.service");
    let local = unit.replace("/usr/local/bin/tollgate", env!("CARGO_BIN_EXE_tollgate"));
    std::fs::write(&path, local).unwrap();
    let out = std::process::Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("tollgate.service"),
        "systemd-analyze verify: {stderr}"
    );
}

fn which(name: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(name))
                .find(|p| p.is_file())
        })
        .ok_or(())
}
