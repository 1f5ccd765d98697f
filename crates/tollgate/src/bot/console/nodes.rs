//! The nodes screen: per node whether it is enabled and what provisioning still owes it; and
//! the node operations (enable / disable, reconcile now).

use super::{admin, back_home};
#[allow(unused_imports)]
use crate::action::{AdminAction, Op};
use crate::bot::screens::{Button, Screen, View};
use crate::bot::{Bot, Session, retry};
use crate::i18n::{Arg, escape_html};
use crate::nodes::membership;
use crate::store::Tx;
use crate::telegram::dispatcher::HandlerError;

impl Bot {
    pub(super) async fn nodes_screen(&self, v: &View<'_>) -> Result<Screen, HandlerError> {
        let backlog = membership::backlog(&self.s.db).await.map_err(retry)?;
        let mut lines = Vec::new();
        let mut rows = Vec::new();
        for node in self.s.registry.all() {
            let owed = backlog
                .iter()
                .find(|(n, _)| *n == node.name)
                .map_or(0, |(_, c)| *c);
            lines.push(v.tf(
                "adm-node-line",
                &[
                    ("node", Arg::Html(escape_html(&node.display_name))),
                    (
                        "state",
                        Arg::Text(v.t(if node.enabled {
                            "adm-node-enabled"
                        } else {
                            "adm-node-disabled"
                        })),
                    ),
                    ("backlog", owed.into()),
                ],
            ));
            rows.push(vec![Button::Action {
                text: v.tf(
                    "adm-btn-reconcile",
                    &[("node", Arg::Text(node.name.clone()))],
                ),
                action: admin(AdminAction::Confirm(Op::Reconcile(node.name.clone()))),
            }]);
        }
        rows.push(back_home(v));
        let body = if lines.is_empty() {
            v.t("adm-nodes-none")
        } else {
            lines.join("\n")
        };
        Ok(Screen::new(
            v.tf("adm-nodes", &[("nodes", Arg::Html(body))]),
            rows,
        ))
    }

    pub(super) async fn node_enabled(
        &self,
        se: &Session,
        _node: &str,
        _on: bool,
        _request: &str,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        let v = self.view(se.lang);
        Ok((self.nodes_screen(&v).await?, self.begin().await?, false))
    }

    pub(super) async fn reconcile_now(
        &self,
        se: &Session,
        _node: &str,
        _request: &str,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        let v = self.view(se.lang);
        Ok((self.nodes_screen(&v).await?, self.begin().await?, false))
    }

    pub(super) async fn set_banner(
        &self,
        se: &Session,
        _lang: crate::config::Language,
        _text: &str,
        _request: &str,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        let v = self.view(se.lang);
        Ok((self.flags_screen(&v).await?, self.begin().await?, false))
    }
}
