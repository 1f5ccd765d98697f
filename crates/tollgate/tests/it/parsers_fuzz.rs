//! docs/reliability.md I (fuzz the parsers), H3: the parsers of what Telegram and users send are fed
//! many thousands of mutated inputs — valid updates and callback data with bytes flipped,
//! inserted, deleted, duplicated, spliced and cut — and must never panic, and must accept only
//! what they are specified to accept:
//!
//! - `telegram::update::parse_head` (every webhook body and polled update): a head only for
//!   JSON with an integer `update_id`, and then the right one; otherwise the specific error.
//!   It reads no more than the head, so a value it skips is not checked (a number beyond any
//!   float); the handler's full parse refuses such a body. Found here: bytes that are not
//!   UTF-8 inside a skipped string passed too, so the head is now read from text only.
//! - `bot::action::Action::parse` (callback data): only the exact encoding of an action.
//! - `bot::incoming::command` (message text): a command name of 1–32 word characters.
//!
//! A seeded generator keeps every run the same, so a failure is reproduced by running again.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tollgate::bot::action::{Action, MAX_DATA};
use tollgate::bot::incoming::command;
use tollgate::telegram::update::{HeadError, parse_head};

/// Valid updates of every kind the service reads.
const UPDATES: &[&str] = &[
    r#"{"update_id":5,"message":{"message_id":1,"date":0,"chat":{"id":42,"type":"private"},"from":{"id":42,"is_bot":false,"first_name":"Ann","language_code":"en"},"text":"/start ref_abc"}}"#,
    r#"{"update_id":6,"edited_message":{"message_id":1,"date":0,"chat":{"id":42,"type":"private"},"text":"hi"}}"#,
    r#"{"update_id":7,"callback_query":{"id":"cb1","from":{"id":42,"is_bot":false,"first_name":"Ann"},"message":{"message_id":9,"date":0,"chat":{"id":42,"type":"private"}},"chat_instance":"x","data":"plan:m1"}}"#,
    r#"{"update_id":8,"callback_query":{"id":"cb2","from":{"id":43,"is_bot":false,"first_name":"Bo"},"chat_instance":"x","data":"menu"}}"#,
    r#"{"update_id":9,"pre_checkout_query":{"id":"pq","from":{"id":42,"is_bot":false,"first_name":"Ann"},"currency":"XTR","total_amount":100,"invoice_payload":"p:1"}}"#,
    r#"{"update_id":10,"message":{"message_id":2,"date":0,"chat":{"id":42,"type":"private"},"successful_payment":{"currency":"XTR","total_amount":100,"invoice_payload":"p:1","telegram_payment_charge_id":"ch_1"}}}"#,
    r#"{"update_id":11,"my_chat_member":{"chat":{"id":42,"type":"private"},"from":{"id":42,"is_bot":false,"first_name":"Ann"},"date":0,"old_chat_member":{"status":"member"},"new_chat_member":{"status":"kicked"}}}"#,
    r#"{"update_id":12,"poll":{"id":"p"}}"#,
];

/// Callback data of every action, and near misses.
const DATA: &[&str] = &[
    "menu",
    "trial",
    "buy",
    "plan:m1",
    "pay:stars:m1",
    "pay:card:y1",
    "pay:bal:m3:42",
    "pay:bal:m3",
    "access",
    "connect",
    "reissue",
    "autorenew:on",
    "autorenew:off",
    "balance",
    "topup:stars:0",
    "help",
    "support",
    "lang",
    "lang:en",
    "lang:ru",
    "plan:",
    "plan:M1",
    "pay:stars:",
    "lang:de",
];

/// Texts users type.
const TEXTS: &[&str] = &[
    "/start",
    "/start ref_abc",
    "/menu@tollgate_bot",
    "/refund ch_1",
    "hello",
    "/",
    "/bad-name",
];

/// One of `seeds` with one to eight random mutations (splices come from the others).
fn mutate(rng: &mut StdRng, seeds: &[&[u8]]) -> Vec<u8> {
    const INTERESTING: &[&[u8]] = &[
        b"\"",
        b"{",
        b"}",
        b"[",
        b"]",
        b":",
        b",",
        b"null",
        b"-1",
        b"1e999",
        b"9223372036854775808",
        b"\\u0000",
        b"\xff",
        b"\xe2\x80",
        b" ",
        b"\n",
        b"@",
        b"/",
        b"ref_",
    ];
    let others = seeds;
    let mut v = seeds[rng.random_range(0..seeds.len())].to_vec();
    for _ in 0..rng.random_range(1..=8) {
        let at = rng.random_range(0..=v.len());
        match rng.random_range(0..7) {
            0 if !v.is_empty() => {
                let i = rng.random_range(0..v.len());
                v[i] ^= 1 << rng.random_range(0..8);
            }
            1 => v.insert(at, rng.random()),
            2 if at < v.len() => {
                let end = rng.random_range(at..=v.len().min(at + 16));
                v.drain(at..end);
            }
            3 if at < v.len() => {
                let end = rng.random_range(at..=v.len().min(at + 16));
                let piece = v[at..end].to_vec();
                v.splice(at..at, piece);
            }
            4 => {
                let other = others[rng.random_range(0..others.len())];
                let from = rng.random_range(0..=other.len());
                let end = rng.random_range(from..=other.len().min(from + 32));
                v.splice(at..at, other[from..end].iter().copied());
            }
            5 => v.truncate(at),
            _ => {
                let word = INTERESTING[rng.random_range(0..INTERESTING.len())];
                v.splice(at..at, word.iter().copied());
            }
        }
    }
    v
}

#[test]
fn update_heads_of_mutated_bodies_are_read_exactly_or_refused_with_the_reason() {
    let seeds: Vec<&[u8]> = UPDATES.iter().map(|u| u.as_bytes()).collect();
    for raw in UPDATES {
        assert!(parse_head(raw).is_ok(), "a valid update is read");
    }
    let mut rng = StdRng::seed_from_u64(20_261_128);
    let (mut heads, mut not_json, mut no_id, mut lenient) = (0, 0, 0, 0);
    for _ in 0..20_000 {
        let bytes = mutate(&mut rng, &seeds);
        // The webhook refuses a body that is not UTF-8 before reading it; polled updates
        // arrive as text.
        let Ok(body) = std::str::from_utf8(&bytes) else {
            continue;
        };
        let json: Option<serde_json::Value> = serde_json::from_str(body).ok();
        // The handlers' own parse must never panic either (it may refuse).
        let _ = serde_json::from_str::<tollgate::bot::incoming::Update>(body);
        match parse_head(body) {
            Ok(head) => {
                heads += 1;
                let Some(json) = json else {
                    // The head reader skips what it does not need without checking it (a
                    // number beyond any float in an ignored field): the id must still be the
                    // body's, and the handler's full parse refuses the rest, which the
                    // dispatcher records as failed with the reason.
                    lenient += 1;
                    assert!(
                        body.contains(&format!("\"update_id\":{}", head.update_id)),
                        "{body}"
                    );
                    assert!(
                        serde_json::from_str::<tollgate::bot::incoming::Update>(body).is_err(),
                        "{body}"
                    );
                    continue;
                };
                assert_eq!(json["update_id"].as_i64(), Some(head.update_id), "{json}");
                assert!(!head.kind.is_empty());
                // A payment read from an odd message has no chat; every other message head
                // has the message's own chat.
                if head.kind == "message" || (head.kind == "payment" && head.chat_key.is_some()) {
                    assert_eq!(
                        json["message"]["chat"]["id"].as_i64(),
                        head.chat_key,
                        "{json}"
                    );
                }
            }
            Err(HeadError::NotJson(reason)) => {
                not_json += 1;
                assert!(json.is_none(), "valid JSON refused as not JSON");
                assert!(!reason.is_empty());
            }
            Err(HeadError::NoUpdateId) => {
                no_id += 1;
                let json = json.expect("NoUpdateId is said of JSON only");
                assert!(json["update_id"].as_i64().is_none(), "{json}");
            }
        }
    }
    // The mutations reached every outcome, or the run proved little.
    // Skipped-but-unchecked values are the exception, not what most heads rest on.
    assert!(
        heads > 500 && not_json > 500 && no_id > 50 && lenient < heads / 10,
        "{heads} {not_json} {no_id} {lenient}"
    );
}

#[test]
fn callback_data_parses_only_as_the_exact_encoding_of_an_action() {
    let seeds: Vec<&[u8]> = DATA.iter().map(|d| d.as_bytes()).collect();
    let mut rng = StdRng::seed_from_u64(7);
    let mut accepted = 0;
    for i in 0..50_000 {
        let bytes = if i % 10 == 0 {
            (0..rng.random_range(0..80)).map(|_| rng.random()).collect()
        } else {
            mutate(&mut rng, &seeds)
        };
        let data = String::from_utf8_lossy(&bytes);
        if let Some(action) = Action::parse(&data) {
            accepted += 1;
            assert_eq!(
                action.encode(),
                data,
                "accepted data is exactly an action's encoding"
            );
            assert!(data.len() <= MAX_DATA);
        }
    }
    assert!(accepted > 100, "some mutations stay valid: {accepted}");
    assert_eq!(Action::parse(&"plan:a".repeat(20)), None, "over 64 bytes");
}

#[test]
fn commands_in_mutated_texts_are_word_names_with_trimmed_arguments() {
    let seeds: Vec<&[u8]> = TEXTS.iter().map(|t| t.as_bytes()).collect();
    let mut rng = StdRng::seed_from_u64(11);
    let mut found = 0;
    for _ in 0..50_000 {
        let bytes = mutate(&mut rng, &seeds);
        let text = String::from_utf8_lossy(&bytes);
        if let Some((name, args)) = command(&text) {
            found += 1;
            assert!(text.starts_with('/'), "{text:?}");
            assert!((1..=32).contains(&name.len()), "{text:?}");
            assert!(
                name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "{text:?}"
            );
            assert_eq!(args, args.trim(), "{text:?}");
        }
    }
    assert!(found > 1_000, "commands found: {found}");
}
