//! The crate's layers, checked: each module of `src/` may use modules of lower layers only
//! (and, within a layer, only the edges listed), read from the `crate::…`, `super::…` and
//! `self::…` paths of its code (test modules excluded).
//!
//! Why: a module that imports one above it ties what should be independent (billing to the
//! bot, the jobs to the wiring) and makes import cycles possible; this keeps dependencies
//! pointing one way — foundations, storage, the domain (users, access, billing, nodes), the
//! Telegram pipeline, the bot and the jobs, the wiring — so each layer can change without
//! the ones below it knowing.

use std::path::{Path, PathBuf};

/// Every module (or submodule with a layer of its own) and its layer; lower numbers are lower.
/// A module path belongs to the longest entry that prefixes it.
const LAYERS: &[(&str, u8)] = &[
    // Foundations: no storage, no business.
    ("domain", 0),
    ("time", 0),
    ("backoff", 0),
    ("shutdown", 0),
    ("metrics::latency", 0),
    ("jobs::outcome", 0),
    ("config", 1),
    ("supervisor", 1),
    ("telemetry", 2),
    ("i18n", 2),
    ("audience", 2),
    ("qr", 2),
    ("telegram::metrics", 2),
    ("nodes::metrics", 2),
    ("jobs::metrics", 2),
    // Storage and what sits directly on it.
    ("store", 3),
    ("metrics", 3),
    ("lease", 4),
    // The audit log sits on storage only, so every module that acts for an operator (flags,
    // nodes, billing, the console) can write its row in the action's transaction.
    ("admin::audit", 4),
    // A user's or admin's pending question sits on storage only too, so the sender's one read
    // (`users::sender`) can bring it along.
    ("admin::prompts", 4),
    ("flags", 5),
    ("telegram::outbox", 4),
    ("telegram::update", 4),
    ("http", 4),
    ("action", 4),
    ("alerts", 5),
    ("backup", 5),
    // The domain.
    ("nodes", 5),
    ("access", 6),
    ("users", 7),
    ("nodes::provisioning", 7),
    ("nodes::reconcile", 7),
    // What the console shows per node: reads the reconcile passes.
    ("nodes::console", 8),
    ("billing", 8),
    ("admin", 8),
    // Broadcasts: their rows and the feeder that queues recipients in the outbox.
    ("broadcast", 8),
    // The Telegram pipeline.
    ("telegram", 9),
    // What handlers and jobs are given, then the bot and the jobs.
    ("services", 10),
    ("bot", 11),
    ("jobs", 11),
    ("housekeeping", 11),
    ("import", 11),
    // The wiring.
    ("app", 12),
    ("sandbox", 12),
];

/// Edges between different modules of one layer that are allowed.
const SAME_LAYER: &[(&str, &str)] = &[("housekeeping", "jobs"), ("sandbox", "app")];

fn layer_of(path: &str) -> Option<(&'static str, u8)> {
    LAYERS
        .iter()
        .filter(|(m, _)| path == *m || path.starts_with(&format!("{m}::")))
        .max_by_key(|(m, _)| m.len())
        .copied()
}

/// The module path of a file under `src/`: `telegram/outbox.rs` → `telegram::outbox`.
fn module_of(relative: &Path) -> String {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The module paths (lowercase segments) a text names after `prefix::`, with `{a, b::c}`
/// groups expanded one level.
fn named_after(code: &str, prefix: &str, base: &str, out: &mut Vec<String>) {
    let needle = format!("{prefix}::");
    let mut from = 0;
    while let Some(at) = code[from..].find(&needle) {
        let start = from + at;
        from = start + needle.len();
        if start > 0 && code[..start].ends_with(|c: char| is_ident(c) || c == ':') {
            continue; // `super::super::`, `foo::crate` — not a path we resolve.
        }
        let rest = &code[from..];
        let mut segments = Vec::new();
        let mut tail = rest;
        loop {
            let end = tail.find(|c: char| !is_ident(c)).unwrap_or(tail.len());
            let seg = &tail[..end];
            if seg.is_empty() || !seg.starts_with(|c: char| c.is_ascii_lowercase()) {
                break;
            }
            segments.push(seg.to_owned());
            tail = &tail[end..];
            if !tail.starts_with("::") {
                break;
            }
            tail = &tail[2..];
        }
        let joined = |segs: &[String]| {
            let mut p = base.to_owned();
            for s in segs {
                if !p.is_empty() {
                    p.push_str("::");
                }
                p.push_str(s);
            }
            p
        };
        if tail.starts_with('{') {
            let inner = &tail[1..tail.find('}').unwrap_or(tail.len())];
            for item in inner.split(',') {
                let item = item.trim();
                let first: String = item.chars().take_while(|c| is_ident(*c)).collect();
                if first.starts_with(|c: char| c.is_ascii_lowercase()) && first != "self" {
                    let mut segs = segments.clone();
                    segs.push(first);
                    out.push(joined(&segs));
                } else {
                    out.push(joined(&segments));
                }
            }
        } else {
            out.push(joined(&segments));
        }
    }
}

/// The code of a file without comments and without its test modules.
fn production_code(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") {
            // A test module: inline ones run to the end of the file by convention here; a
            // declared one (`mod x;`) is a file of its own, skipped by the caller.
            if lines
                .peek()
                .is_some_and(|n| n.trim_start().starts_with("mod ") && n.trim_end().ends_with('{'))
            {
                break;
            }
            continue;
        }
        if t.starts_with("//") {
            continue;
        }
        out.push_str(line.split(" //").next().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// Files declared as test modules (`#[cfg(test)] mod name;`), to skip.
fn test_module_files(dir: &Path, text: &str, out: &mut Vec<PathBuf>) {
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim_start().starts_with("#[cfg(test)]")
            && let Some(next) = lines.peek()
        {
            let n = next.trim();
            if let Some(name) = n.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
                out.push(dir.join(format!("{name}.rs")));
                out.push(dir.join(name));
            }
        }
    }
}

/// Every module of the crate's production code: its path, whether it is a `mod.rs`, and its
/// code without comments and test modules.
fn production_modules(src: &Path) -> Vec<(String, bool, String)> {
    let mut files = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut skipped = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read file");
        let dir = if f
            .file_name()
            .is_some_and(|n| n == "mod.rs" || n == "lib.rs")
        {
            f.parent().expect("parent").to_path_buf()
        } else {
            f.with_extension("")
        };
        test_module_files(&dir, &text, &mut skipped);
    }
    let mut out = Vec::new();
    for f in files {
        if skipped.iter().any(|s| f.starts_with(s)) {
            continue;
        }
        let relative = f.strip_prefix(src).expect("under src");
        let code = production_code(&std::fs::read_to_string(&f).expect("read file"));
        out.push((module_of(relative), relative.ends_with("mod.rs"), code));
    }
    out
}

/// Every `(module, imported module path)` of the crate's production code.
fn edges(src: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (module, is_mod_file, code) in production_modules(src) {
        if module == "lib" || module == "main" {
            continue;
        }
        out.extend(
            imports_of(&module, is_mod_file, &code)
                .into_iter()
                .map(|t| (module.clone(), t)),
        );
    }
    out
}

fn imports_of(module: &str, is_mod_file: bool, code: &str) -> Vec<String> {
    let mut found = Vec::new();
    named_after(code, "crate", "", &mut found);
    // `super` of `a::b` (a file) is `a`; of `a::b` declared in `a/b/mod.rs` also `a`.
    let parent = module.rsplit_once("::").map_or("", |(p, _)| p);
    named_after(code, "super", parent, &mut found);
    let own = if is_mod_file { module } else { parent };
    named_after(code, "self", own, &mut found);
    found.retain(|t| !t.is_empty());
    let mut seen = std::collections::HashSet::new();
    found.retain(|t| seen.insert(t.clone()));
    found
}

/// The imports that break the layering, as readable lines.
fn violations(edges: &[(String, String)]) -> Vec<String> {
    let mut bad = Vec::new();
    for (from, to) in edges {
        let Some((from_unit, from_layer)) = layer_of(from) else {
            bad.push(format!("{from}: not in LAYERS (give it a layer)"));
            continue;
        };
        let Some((to_unit, to_layer)) = layer_of(to) else {
            // Crate-root items (the `on_db!`/`on_tx!` macros) and unknown names.
            if to.contains("::") || LAYERS.iter().any(|(m, _)| m.starts_with(to.as_str())) {
                bad.push(format!("{from} uses {to}: not in LAYERS (give it a layer)"));
            }
            continue;
        };
        if from_unit == to_unit {
            continue;
        }
        let allowed = to_layer < from_layer
            || (to_layer == from_layer && SAME_LAYER.contains(&(from_unit, to_unit)));
        if !allowed {
            bad.push(format!(
                "{from} (layer {from_layer}, {from_unit}) uses {to} (layer {to_layer}, {to_unit})"
            ));
        }
    }
    bad.sort();
    bad.dedup();
    bad
}

#[test]
fn every_module_uses_only_modules_of_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = edges(&src);
    assert!(
        edges.len() > 200,
        "too few imports read ({}): is the reader broken?",
        edges.len()
    );
    let bad = violations(&edges);
    assert!(
        bad.is_empty(),
        "imports that break the layering:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_check_reports_an_upward_import_and_accepts_a_downward_one() {
    let code = production_code(
        "use crate::bot::Bot;\nuse crate::store::{Db, Tx};\nuse super::ledger;\n// use crate::app::Services;\n#[cfg(test)]\nmod tests {\n    use crate::app::x;\n}\n",
    );
    let found = imports_of("billing::refund", false, &code);
    assert_eq!(found, ["bot", "store", "billing::ledger"]);
    let edges: Vec<(String, String)> = found
        .into_iter()
        .map(|t| ("billing::refund".to_owned(), t))
        .collect();
    let bad = violations(&edges);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(bad[0].contains("uses bot (layer 11"), "{bad:?}");
    // Grouped paths name each module.
    let grouped = imports_of(
        "bot::reply",
        false,
        "use crate::telegram::{inbox, outbox::Columns};",
    );
    assert_eq!(grouped, ["telegram::inbox", "telegram::outbox"]);
}

/// Every table and the module that owns it (ARCHITECTURE.md's table): the only module whose
/// code names the table in SQL. Another owner's query that needs it embeds a fragment the
/// owner exports (e.g. `users::user_language_sql!`), so a change to a table is made, and
/// reviewed, in one module.
const TABLE_OWNERS: &[(&str, &str)] = &[
    ("schema_migrations", "store::migrate"),
    ("leases", "lease"),
    ("settings", "flags"),
    ("users", "users"),
    ("subscriptions", "access"),
    ("retired_keys", "access"),
    ("access_notices", "access::notices"),
    ("node_memberships", "nodes::membership"),
    ("tg_inbox", "telegram::inbox"),
    ("outbox", "telegram::outbox"),
    ("outbox_attempts", "telegram::outbox"),
    ("purchases", "billing"),
    ("payments", "billing"),
    ("balance_ledger", "billing::ledger"),
    ("provider_cursors", "billing::cursors"),
    ("revenue_totals", "billing::stats"),
    ("provider_invoices", "billing::providers"),
    ("unmatched_payments", "billing::unmatched"),
    ("audit_log", "admin::audit"),
    ("alert_conditions", "alerts"),
    ("node_reconciles", "nodes::reconcile"),
    ("node_switches", "nodes::switches"),
    ("admin_prompts", "admin::prompts"),
    ("promo_codes", "billing::promo"),
    ("promo_uses", "billing::promo"),
    ("personal_discounts", "billing::promo"),
    ("promo_prompts", "billing::promo"),
    ("withdrawals", "billing::withdrawals"),
    ("broadcasts", "broadcast"),
];

/// Tables of *another* database that a module reads, by the same names as ours: the importer
/// reads the earlier bot's `users`, `subscriptions` and `promo_codes` in that bot's PostgreSQL database (its
/// own business), and writes ours through the owners' APIs.
const OTHER_DATABASES: &[(&str, &str)] = &[
    ("import::atcbot", "users"),
    ("import::atcbot", "subscriptions"),
    ("import::atcbot", "promo_codes"),
];

/// The tables `code` names in SQL (after `FROM`, `JOIN`, `INTO`, `UPDATE` or `TABLE`).
fn tables_named(code: &str) -> Vec<&'static str> {
    let words: Vec<&str> = code
        .split(|c: char| !is_ident(c))
        .filter(|w| !w.is_empty())
        .collect();
    let mut found = Vec::new();
    for pair in words.windows(2) {
        if ["FROM", "JOIN", "INTO", "UPDATE", "TABLE"].contains(&pair[0])
            && let Some((table, _)) = TABLE_OWNERS.iter().find(|(t, _)| *t == pair[1])
            && !found.contains(table)
        {
            found.push(*table);
        }
    }
    found
}

/// The modules that name a table they do not own, as readable lines.
fn ownership_violations(modules: &[(String, String)]) -> Vec<String> {
    let mut bad = Vec::new();
    for (module, code) in modules {
        for table in tables_named(code) {
            let owner = TABLE_OWNERS
                .iter()
                .find(|(t, _)| *t == table)
                .map_or("", |(_, o)| *o);
            let owns = module == owner || module.starts_with(&format!("{owner}::"));
            let elsewhere = OTHER_DATABASES.contains(&(module.as_str(), table));
            if !owns && !elsewhere {
                bad.push(format!("{module} names table {table}, which {owner} owns"));
            }
        }
    }
    bad.sort();
    bad
}

#[test]
fn each_table_is_named_in_sql_by_its_owner_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules: Vec<(String, String)> = production_modules(&src)
        .into_iter()
        .map(|(m, _, code)| (m, code))
        .collect();
    let named: usize = modules.iter().map(|(_, c)| tables_named(c).len()).sum();
    assert!(
        named >= 15,
        "too few table names read ({named}): is the reader broken?"
    );
    let bad = ownership_violations(&modules);
    assert!(
        bad.is_empty(),
        "SQL on a table outside its owner:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_ownership_check_reports_a_join_on_another_owners_table() {
    let code = production_code(
        "const Q: &str = \"SELECT COUNT(*) FROM payments p JOIN users u ON u.id = p.user_id\";\n// FROM outbox\n",
    );
    assert_eq!(tables_named(&code), ["payments", "users"]);
    let bad = ownership_violations(&[("billing::refund".to_owned(), code.clone())]);
    assert_eq!(bad, ["billing::refund names table users, which users owns"]);
    assert!(
        ownership_violations(&[("users".to_owned(), "UPDATE users SET x = 1".to_owned())])
            .is_empty()
    );
    // A module whose name merely starts like the owner's is not the owner.
    let bad = ownership_violations(&[("billing_x".to_owned(), "DELETE FROM purchases".to_owned())]);
    assert_eq!(bad.len(), 1, "{bad:?}");
}
