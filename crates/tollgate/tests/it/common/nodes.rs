//! Nodes for the access tests: a real V2Ray server core with its `tollgate-node` agent behind
//! a cuttable TCP proxy, a catalog pointing at them, and the service's node components wired
//! to a test database.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tollgate::access::{self, Grant, Kind, Subscription};
use tollgate::config::catalog::parse_catalog;
use tollgate::config::{Catalog, Env};
use tollgate::metrics::Metrics;
use tollgate::nodes::provisioning::{Provisioner, ProvisioningConfig};
use tollgate::nodes::reconcile::{ReconcileConfig, Reconciler};
use tollgate::nodes::{EnabledNodes, NodeJobs, ProvisioningWake, Registry};
use tollgate::on_db;
use tollgate::store::Db;
use tollgate::supervisor::{self, Component, Statuses};
use tollgate::time::{SharedClock, Timestamp};
use tollgate_node::TlsSetting;
use tollgate_node::api::UserEntry;
use tollgate_node::testing::{ServerCore, TestAgent, V2Ray, free_port};

use super::proxy::TcpProxy;

pub const EXAMPLE_CATALOG: &str = include_str!("../../../../../config/tollgate.example.toml");

/// A V2Ray core, its agent on a fixed port (so it can be stopped and started again), and a
/// proxy in front of the agent that the service talks to.
pub struct TestNode {
    pub name: String,
    pub core: ServerCore,
    pub agent: TestAgent,
    pub proxy: TcpProxy,
}

impl TestNode {
    pub async fn start(v2ray: &V2Ray, name: &str) -> TestNode {
        Self::start_with(v2ray, name, false).await
    }

    /// An agent serving HTTPS with the self-signed certificate it creates, as a node
    /// installed with the defaults does; its catalog entry pins that certificate.
    pub async fn start_tls(v2ray: &V2Ray, name: &str) -> TestNode {
        Self::start_with(v2ray, name, true).await
    }

    async fn start_with(v2ray: &V2Ray, name: &str, tls: bool) -> TestNode {
        let core = ServerCore::start(v2ray).await.expect("v2ray server core");
        let port = free_port().expect("free port");
        let agent = TestAgent::start_with(&core, |c| {
            c.listen = SocketAddr::from(([127, 0, 0, 1], port));
            if tls {
                let dir = c.state_file.parent().expect("state dir").to_path_buf();
                c.tls = TlsSetting::SelfSigned { dir };
            }
        })
        .await
        .expect("agent");
        let proxy = TcpProxy::start(SocketAddr::from(([127, 0, 0, 1], port))).await;
        TestNode {
            name: name.to_owned(),
            core,
            agent,
            proxy,
        }
    }

    pub fn token_env(&self) -> String {
        format!("NODE_{}_TOKEN", self.name.to_uppercase().replace('-', "_"))
    }

    /// The `[[nodes]]` table of this node: plain VLESS over TCP to the core; the agent over
    /// https with its certificate pinned when it serves TLS.
    pub fn toml(&self, enabled: bool) -> String {
        let agent = match self.agent.cert_fingerprint() {
            Some(pin) => format!(
                "agent_url = \"https://{}\"\nagent_cert_sha256 = \"{pin}\"",
                self.proxy.addr
            ),
            None => format!("agent_url = \"http://{}\"", self.proxy.addr),
        };
        format!(
            "\n[[nodes]]\nname = \"{}\"\ncountry = \"NL\"\nenabled = {enabled}\n{agent}\nagent_token_env = \"{}\"\nlink = {{ host = \"127.0.0.1\", port = {}, security = \"none\", transport = \"tcp\" }}\n",
            self.name,
            self.token_env(),
            self.core.vless_addr().port(),
        )
    }

    pub fn env_pair(&self) -> (String, String) {
        (self.token_env(), self.agent.token().expose().to_owned())
    }

    /// The agent's users, straight from the agent (not through the proxy).
    pub async fn users(&self) -> Vec<UserEntry> {
        self.agent
            .client()
            .list_users()
            .await
            .expect("list users")
            .users
    }

    pub async fn emails(&self) -> Vec<String> {
        let mut e: Vec<String> = self.users().await.into_iter().map(|u| u.email).collect();
        e.sort();
        e
    }
}

/// The example catalog with these nodes (enabled unless listed in `disabled`).
pub fn catalog_text(nodes: &[&TestNode], disabled: &[&str]) -> String {
    let mut text = EXAMPLE_CATALOG.to_owned();
    for n in nodes {
        text.push_str(&n.toml(!disabled.contains(&n.name.as_str())));
    }
    text
}

pub fn catalog(nodes: &[&TestNode], disabled: &[&str]) -> Catalog {
    let env = Env::from_pairs(nodes.iter().map(|n| n.env_pair()));
    parse_catalog(&catalog_text(nodes, disabled), "test.toml", &env).expect("test catalog")
}

/// Registry, provisioning and reconcile over `db` for `catalog`, with test-friendly timings.
pub struct Stack {
    pub jobs: NodeJobs,
    pub registry: Arc<Registry>,
    pub provisioner: Arc<Provisioner>,
    pub reconciler: Arc<Reconciler>,
    pub wake: ProvisioningWake,
    pub metrics: Metrics,
    pub db: Db,
}

impl Stack {
    pub fn new(
        db: &Db,
        catalog: &Catalog,
        clock: SharedClock,
        adjust: impl FnOnce(&mut ProvisioningConfig),
    ) -> Stack {
        let call_timeout = Duration::from_secs(2);
        let registry = Arc::new(Registry::from_catalog(catalog, call_timeout).expect("registry"));
        let metrics = Metrics::new();
        let wake = ProvisioningWake::new();
        let mut config = ProvisioningConfig::for_call_timeout(call_timeout);
        config.poll_interval = Duration::from_millis(50);
        config.retry_base = Duration::from_millis(50);
        config.retry_max = Duration::from_millis(400);
        adjust(&mut config);
        let jobs = NodeJobs {
            db: db.clone(),
            registry: registry.clone(),
            clock,
            holder: format!("test:{}", uuid::Uuid::new_v4().simple()),
            wake: wake.clone(),
            metrics: metrics.nodes.clone(),
        };
        let provisioner = Arc::new(Provisioner::new(jobs.clone(), config));
        let reconciler = Arc::new(Reconciler::new(
            jobs.clone(),
            ReconcileConfig::every(Duration::from_secs(3600)),
        ));
        Stack {
            jobs,
            registry,
            provisioner,
            reconciler,
            wake,
            metrics,
            db: db.clone(),
        }
    }

    pub fn enabled(&self) -> &EnabledNodes {
        self.registry.enabled()
    }

    /// Runs provisioning under a supervisor until stopped.
    pub fn run_provisioning(&self) -> Running {
        run(vec![self.provisioner.clone()])
    }

    /// Grants `days` of paid access to `user` (registering the user first if needed).
    pub async fn grant(&self, user: i64, days: u32, now: Timestamp) -> Subscription {
        grant(&self.db, self.enabled(), user, days, now).await
    }

    pub async fn reconcile(&self, node: &str) -> tollgate::nodes::reconcile::ReconcileReport {
        let node = self.registry.get(node).expect("node in the registry");
        self.reconciler
            .reconcile_node(node, None, &|| {})
            .await
            .expect("reconcile")
    }
}

/// Runs `components` under a supervisor (a restart fails the test) until stopped.
pub fn run(components: Vec<Arc<dyn Component>>) -> Running {
    let stop = CancellationToken::new();
    let task = tokio::spawn(supervisor::supervise(
        components,
        stop.clone(),
        Statuses::default(),
        Arc::new(|name, reason| panic!("{name} was restarted: {reason}")),
    ));
    Running { stop, task }
}

pub struct Running {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("components stop")
            .expect("supervisor task");
    }
}

pub async fn ensure_user(db: &Db, id: i64) {
    on_db!(db, p => sqlx::query(
        "INSERT INTO users (id, first_name, language, referral_code, created_at, last_seen_at)
         VALUES ($1, 'Test', 'en', $2, 0, 0) ON CONFLICT (id) DO NOTHING"
    ).bind(id).bind(format!("ref{id}")).execute(p).await.map(|_| ()))
    .expect("insert user");
}

/// Registers `user` and grants `days` of paid access in one transaction.
pub async fn grant(
    db: &Db,
    nodes: &EnabledNodes,
    user: i64,
    days: u32,
    now: Timestamp,
) -> Subscription {
    ensure_user(db, user).await;
    let mut tx = db.begin().await.expect("begin");
    let granted = access::grant_or_extend(
        &mut tx,
        nodes,
        user,
        &Grant::days(Kind::Paid, days, Some("m1")),
        now,
    )
    .await
    .expect("grant");
    tx.commit().await.expect("commit");
    granted.subscription
}

/// Rows not yet where they should be.
pub async fn backlog(db: &Db) -> i64 {
    on_db!(db, p => sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM node_memberships WHERE desired <> observed"
    ).fetch_one(p).await)
    .expect("backlog")
}

/// A counter or gauge value from the metrics text, 0 when absent.
pub fn metric(metrics: &Metrics, series: &str) -> f64 {
    metrics
        .render()
        .lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

/// Runs one statement (test set-up and fault injection).
pub async fn exec(db: &Db, sql: &'static str) {
    on_db!(db, p => sqlx::query(sql).execute(p).await.map(|_| ())).expect(sql);
}

/// Emails the database wants on `node`.
pub async fn wanted(db: &Db, node: &str) -> Vec<String> {
    on_db!(db, p => sqlx::query_scalar(
        "SELECT email FROM node_memberships WHERE node = $1 AND desired = 'present' ORDER BY email"
    ).bind(node).fetch_all(p).await)
    .expect("wanted emails")
}

/// The node holds exactly what the database wants, each user once, with the key we issued.
pub async fn assert_node_matches(db: &Db, node: &TestNode) {
    let users = node.users().await;
    let emails: Vec<String> = users.iter().map(|u| u.email.clone()).collect();
    assert_eq!(emails, wanted(db, &node.name).await, "node {}", node.name);
    let uuids: std::collections::BTreeSet<&str> = users.iter().map(|u| u.uuid.as_str()).collect();
    assert_eq!(uuids.len(), users.len(), "one uuid per user");
    for u in &users {
        let uuid: uuid::Uuid = on_db!(db, p => sqlx::query_scalar(
            "SELECT vpn_uuid FROM node_memberships WHERE node = $1 AND email = $2"
        ).bind(&node.name).bind(&u.email).fetch_one(p).await)
        .expect("row of a listed user");
        assert_eq!(
            u.uuid,
            uuid.to_string(),
            "{} carries the key we issued",
            u.email
        );
    }
}
