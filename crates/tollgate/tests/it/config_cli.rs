//! docs/reliability.md A10, H1, I: configuration errors are specific, secrets never printed.

use std::time::Duration;

use crate::common::service::{Service, TEST_BOT_TOKEN, base_env, example_catalog, run_to_end};
use crate::common::{TestDb, wait_for};

fn env_with(changes: &[(&str, Option<&str>)]) -> Vec<(String, String)> {
    let mut env = base_env("sqlite://data/never-opened.db");
    for (k, v) in changes {
        env.retain(|(key, _)| key != k);
        if let Some(v) = v {
            env.push(((*k).to_owned(), (*v).to_owned()));
        }
    }
    env
}

#[tokio::test]
async fn check_config_prints_the_effective_configuration_without_secrets() {
    let env = env_with(&[
        ("PUBLIC_URL", Some("https://bot.example.com")),
        (
            "WEBHOOK_SECRET",
            Some("webhook-secret-value-0123456789abcdef"),
        ),
        (
            "DATABASE_URL",
            Some("postgres://app:db-password-456@db.internal/tollgate"),
        ),
        ("PAYMENT_PROVIDER_TOKEN", Some("provider-token-789")),
    ]);
    let (status, out, err) = run_to_end(&["check-config"], &env).await;
    assert!(status.success(), "{err}");
    for secret in [
        "TEST-token_ThatMustNeverBeLogged0123",
        "webhook-secret-value-0123456789abcdef",
        "db-password-456",
        "provider-token-789",
    ] {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "{secret} leaked:\n{out}\n{err}"
        );
    }
    assert!(out.contains("BOT_TOKEN"));
    assert!(out.contains("4242:***"));
    assert!(out.contains("postgres://app:***@db.internal/tollgate"));
    assert!(out.contains("PORT") && out.contains("(set)") && out.contains("(default)"));
    assert!(
        out.contains("[[plans]]") && out.contains("id = \"m1\""),
        "{out}"
    );
    assert!(out.contains("configuration OK"));
}

#[tokio::test]
async fn each_kind_of_bad_value_has_its_own_message_and_exit_code() {
    type Change<'a> = (&'a str, Option<&'a str>);
    let cases: &[(&[Change], &[&str])] = &[
        (
            &[("BOT_TOKEN", None)],
            &["BOT_TOKEN: is not set", "@BotFather"],
        ),
        (
            &[("BOT_TOKEN", Some("nonsense"))],
            &["BOT_TOKEN", "does not look like a bot token"],
        ),
        (
            &[("PORT", Some("eighty"))],
            &["PORT", "\"eighty\" is not a port number", "fix: set PORT"],
        ),
        (
            &[("DATABASE_URL", Some("mysql://x/y"))],
            &["DATABASE_URL", "neither a SQLite nor a PostgreSQL URL"],
        ),
        (
            &[("DATABASE_ACQUIRE_TIMEOUT", Some("5"))],
            &["DATABASE_ACQUIRE_TIMEOUT", "has no unit"],
        ),
        (
            &[("ADMIN_IDS", Some("1,two"))],
            &["ADMIN_IDS", "\"two\" is not a Telegram user id"],
        ),
        (
            &[("PUBLIC_URL", Some("https://bot.example.com"))],
            &["WEBHOOK_SECRET: is not set, but PUBLIC_URL is"],
        ),
        (
            &[
                ("PUBLIC_URL", Some("https://bot.example.com")),
                ("WEBHOOK_SECRET", Some("x")),
            ],
            &[
                "WEBHOOK_SECRET",
                "too short to guard against forged payments: use at least 32",
                "openssl rand -hex 32",
            ],
        ),
        (
            &[("INBOX_RETENTION", Some("1h"))],
            &[
                "INBOX_RETENTION",
                "Telegram may redeliver an update for 24 h",
            ],
        ),
        (
            &[("LOG_FORMAT", Some("yaml"))],
            &["LOG_FORMAT", "\"yaml\" is not a log format"],
        ),
        (
            &[("TOLLGATE_CONFIG", Some("/nonexistent/tollgate.toml"))],
            &[
                "cannot read the catalog file",
                "copy config/tollgate.example.toml",
            ],
        ),
        (
            &[("TOLLGATE_CONFG", Some("x"))],
            &["TOLLGATE_CONFG: is not a Tollgate setting"],
        ),
    ];
    for (changes, needles) in cases {
        let (status, out, err) = run_to_end(&["check-config"], &env_with(changes)).await;
        assert_eq!(status.code(), Some(2), "{changes:?}: {err}");
        assert!(out.is_empty(), "nothing on stdout when invalid: {out}");
        for n in *needles {
            assert!(err.contains(n), "{changes:?}: expected {n:?} in:\n{err}");
        }
        assert!(
            !err.contains("TEST-token_ThatMustNeverBeLogged0123"),
            "{err}"
        );
    }
    // Several problems at once are all listed.
    let (_, _, err) = run_to_end(
        &["check-config"],
        &env_with(&[("PORT", Some("x")), ("LOG_FORMAT", Some("y"))]),
    )
    .await;
    assert!(
        err.contains("PORT") && err.contains("LOG_FORMAT") && err.contains("2 error(s)"),
        "{err}"
    );
}

#[tokio::test]
async fn catalog_problems_name_the_key_and_unknown_keys_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let example = std::fs::read_to_string(example_catalog()).unwrap();
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "[trial]\ndays = 3",
            "[trial]\ndays = 3\nlenght = 4",
            &["unknown field `lenght`", "line"],
        ),
        (
            "RUB = \"149\"",
            "RUB = 149.99",
            &["plans[0].prices.RUB", "floating-point"],
        ),
        ("days = 30", "days = \"thirty\"", &["invalid type"]),
        (
            "utc_offset = \"+03:00\"",
            "utc_offset = \"Moscow\"",
            &["bot.utc_offset", "+03:00"],
        ),
    ];
    for (from, to, needles) in cases {
        let text = example.replacen(from, to, 1);
        assert_ne!(text, example, "{from:?} must be in the example");
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let env = env_with(&[("TOLLGATE_CONFIG", Some(path.to_str().unwrap()))]);
        let (status, _, err) = run_to_end(&["check-config"], &env).await;
        assert_eq!(status.code(), Some(2), "{err}");
        for n in *needles {
            assert!(err.contains(n), "expected {n:?} in:\n{err}");
        }
    }
}

#[tokio::test]
async fn run_refuses_to_start_on_bad_configuration() {
    let (status, out, err) = run_to_end(&["run"], &env_with(&[("PORT", Some("99999"))])).await;
    assert_eq!(status.code(), Some(2), "{out}{err}");
    assert!(err.contains("PORT"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_logs() {
    let t = TestDb::sqlite_with(false).await;
    let mut env = base_env(&t.url);
    env.push(("RUST_LOG".to_owned(), "debug".to_owned()));
    env.push((
        "PUBLIC_URL".to_owned(),
        "https://bot.example.com".to_owned(),
    ));
    env.push((
        "WEBHOOK_SECRET".to_owned(),
        "webhook-secret-value-0123456789abcdef".to_owned(),
    ));
    let mut svc = Service::start(&env).await;
    wait_for("ready", Duration::from_secs(30), || {
        let log = svc.log();
        async move { log.contains("runtime flag").then_some(()) }
    })
    .await;
    svc.signal("TERM");
    svc.wait_exit(Duration::from_secs(15)).await;
    let log = svc.log();
    assert!(log.contains("starting tollgate"), "{log}");
    assert!(log.contains("\"intake\":\"webhook\""), "{log}");
    for flag in [
        "payments",
        "trials",
        "auto_renewal",
        "broadcasts",
        "maintenance",
    ] {
        assert!(
            log.contains(&format!("\"flag\":\"{flag}\"")),
            "one startup line per flag: {flag}"
        );
    }
    assert!(
        !log.contains(TEST_BOT_TOKEN),
        "bot token leaked into the log"
    );
    assert!(
        !log.contains("webhook-secret-value-0123456789abcdef"),
        "webhook secret leaked into the log"
    );
}

#[tokio::test]
async fn help_and_version_explain_the_commands() {
    let (status, out, _) = run_to_end(&["--help"], &[]).await;
    assert!(status.success());
    for cmd in ["run", "migrate", "check-config"] {
        assert!(out.contains(cmd), "{out}");
    }
    let (status, out, _) = run_to_end(&["migrate", "--help"], &[]).await;
    assert!(status.success());
    assert!(out.contains("serialized by a database lock"), "{out}");
    let (status, out, _) = run_to_end(&["--version"], &[]).await;
    assert!(status.success());
    assert!(out.starts_with("tollgate "), "{out}");
}
