//! Helpers the environment's unit tests share: an environment with a valid bot token, and
//! the errors `deployment` reports for it.

use super::{Env, deployment};

const TOKEN: &str = "123456789:AAbbCCddEEffGGhhIIjjKKllMMnnOOppQQr";

pub(super) fn env(pairs: &[(&str, &str)]) -> Env {
    let mut e = Env::from_pairs([("BOT_TOKEN", TOKEN)]);
    for (k, v) in pairs {
        e.set(k, v);
    }
    e
}

pub(super) fn errors(pairs: &[(&str, &str)]) -> String {
    match deployment(&env(pairs)) {
        Ok(_) => panic!("expected an error for {pairs:?}"),
        Err(e) => e.to_string(),
    }
}
