//! The nodes screen — per node: in service or not, breaker, users, provisioning backlog, the
//! last reconcile pass with the drift it repaired and the removals it refused — and the node
//! operations: take a node out of service or put it back, reconcile now. Both are stored
//! (`nodes::switches`, `nodes::reconcile`) for the replicas to apply within seconds: handlers
//! never call a node. The maintenance banner's change is here too, as the other stored switch.

use super::{admin, back_home};
use crate::action::{AdminAction, Op};
use crate::admin::Actor;
use crate::bot::screens::{Button, Screen, View};
use crate::bot::{Bot, Session, retry};
use crate::config::Language;
use crate::flags;
use crate::i18n::{Arg, escape_html};
use crate::nodes::console::console_state;
use crate::nodes::reconcile;
use crate::nodes::switches::{self, SwitchError};
use crate::store::Tx;
use crate::telegram::dispatcher::HandlerError;

impl Bot {
    pub(super) async fn nodes_screen(&self, v: &View<'_>) -> Result<Screen, HandlerError> {
        let nodes = console_state(&self.s.db, &self.s.registry)
            .await
            .map_err(retry)?;
        let mut lines = Vec::new();
        let mut rows = Vec::new();
        for n in &nodes {
            let state = if !n.in_catalog {
                v.t("adm-node-off-in-catalog")
            } else if n.enabled {
                v.t("adm-node-enabled")
            } else {
                v.t("adm-node-disabled")
            };
            let breaker = match n.breaker_open_since {
                Some(since) => v.tf(
                    "adm-node-breaker-open",
                    &[("since", Arg::Text(v.date(since)))],
                ),
                None => v.t("adm-node-breaker-closed"),
            };
            let mut line = v.tf(
                "adm-node-line",
                &[
                    ("node", Arg::Html(escape_html(&n.name))),
                    ("state", Arg::Text(state)),
                    ("breaker", Arg::Text(breaker)),
                    ("users", n.users.into()),
                    ("backlog", n.backlog.into()),
                ],
            );
            if let Some(p) = &n.last_reconcile {
                if let Some(at) = p.finished_at {
                    line.push('\n');
                    line.push_str(&v.tf(
                        "adm-node-last-pass",
                        &[
                            ("at", Arg::Text(v.date(at))),
                            ("listed", p.listed.into()),
                            ("restored", p.restored.into()),
                            ("removed", p.removed.into()),
                            ("refused", p.refused.into()),
                        ],
                    ));
                }
                if p.requested_at.is_some() {
                    line.push('\n');
                    line.push_str(&v.t("adm-node-requested"));
                }
            }
            lines.push(line);
            if n.in_catalog {
                let mut row = vec![Button::Action {
                    text: v.tf(
                        if n.enabled {
                            "adm-btn-node-off"
                        } else {
                            "adm-btn-node-on"
                        },
                        &[("node", Arg::Text(n.name.clone()))],
                    ),
                    action: admin(AdminAction::Confirm(Op::NodeEnabled {
                        node: n.name.clone(),
                        on: !n.enabled,
                    })),
                }];
                if n.enabled {
                    row.push(Button::Action {
                        text: v.tf("adm-btn-reconcile", &[("node", Arg::Text(n.name.clone()))]),
                        action: admin(AdminAction::Confirm(Op::Reconcile(n.name.clone()))),
                    });
                }
                rows.push(row);
            }
        }
        rows.push(back_home(v));
        let body = if lines.is_empty() {
            v.t("adm-nodes-none")
        } else {
            lines.join("\n\n")
        };
        Ok(Screen::new(
            v.tf("adm-nodes", &[("nodes", Arg::Html(body))]),
            rows,
        ))
    }

    pub(super) async fn node_enabled(
        &self,
        se: &Session,
        node: &str,
        on: bool,
        request: &str,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        let v = self.view(se.lang);
        let mut tx = self.begin().await?;
        let actor = Actor::Admin(se.user.id);
        let entry =
            match switches::switch(&mut tx, &self.s.registry, node, on, actor, self.now()).await {
                Ok((_, entry)) => entry,
                Err(SwitchError::Database(e)) => return Err(retry(e)),
                Err(e) => return self.refused(&v, tx, e.to_string(), true).await,
            };
        let done = if on {
            "adm-node-switched-on"
        } else {
            "adm-node-switched-off"
        };
        let (note, tx) = self.recorded(&v, tx, &entry.request(request), done).await?;
        tx.commit().await.map_err(retry)?;
        let screen = self.nodes_screen(&v).await?.with_note(note);
        Ok((screen, self.begin().await?, false))
    }

    pub(super) async fn reconcile_now(
        &self,
        se: &Session,
        node: &str,
        request: &str,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        let v = self.view(se.lang);
        let mut tx = self.begin().await?;
        let actor = Actor::Admin(se.user.id);
        let entry = match reconcile::ask(&mut tx, &self.s.registry, node, actor, self.now()).await {
            Ok(entry) => entry,
            Err(SwitchError::Database(e)) => return Err(retry(e)),
            Err(e) => return self.refused(&v, tx, e.to_string(), true).await,
        };
        let (note, tx) = self
            .recorded(&v, tx, &entry.request(request), "adm-reconcile-asked")
            .await?;
        tx.commit().await.map_err(retry)?;
        let screen = self.nodes_screen(&v).await?.with_note(note);
        Ok((screen, self.begin().await?, false))
    }

    pub(super) async fn set_banner(
        &self,
        se: &Session,
        lang: Language,
        text: &str,
        request: &str,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        let v = self.view(se.lang);
        let mut tx = self.begin().await?;
        let actor = Actor::Admin(se.user.id);
        let entry = match flags::change_banner(&mut tx, lang, text, actor, self.now()).await {
            Ok((_, entry)) => entry,
            Err(flags::BannerError::Database(e)) => return Err(retry(e)),
            Err(e) => return self.refused(&v, tx, e.to_string(), false).await,
        };
        let (note, tx) = self
            .recorded(&v, tx, &entry.request(request), "adm-banner-set")
            .await?;
        tx.commit().await.map_err(retry)?;
        let screen = self.flags_screen(&v).await?.with_note(note);
        Ok((screen, self.begin().await?, false))
    }

    /// An operation its owner refused (an unknown node, one disabled in the catalog, a banner
    /// too long): nothing changed; the nodes (or flags) screen with the reason.
    async fn refused(
        &self,
        v: &View<'_>,
        tx: Tx,
        why: String,
        nodes: bool,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        tx.rollback().await.map_err(retry)?;
        let note = v.tf("adm-refused", &[("why", Arg::Text(why))]);
        let screen = if nodes {
            self.nodes_screen(v).await?
        } else {
            self.flags_screen(v).await?
        };
        Ok((screen.with_note(note), self.begin().await?, false))
    }
}
