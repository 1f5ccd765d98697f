//! [`NodeClient`]: the typed client the Tollgate service uses to drive an agent.
//!
//! Why errors are classified here: the service's provisioning worker decides between "retry
//! with backoff" ([`NodeError::Unavailable`]), "our request is wrong" ([`NodeError::BadRequest`],
//! [`NodeError::Conflict`]) and "the node is misconfigured" ([`NodeError::Unauthorized`],
//! [`NodeError::Other`]), and must never hang: every call has a deadline.
//!
//! TLS: an agent's self-signed certificate is trusted by pinning its SHA-256 fingerprint
//! ([`NodeClientBuilder::pin_certificate`], see [`crate::pin`]); a certificate from a CA the
//! client trusts works without a pin, and [`NodeClientBuilder::root_certificate_pem`] adds a
//! root of one's own.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{
    ConvergeRequest, ConvergeResponse, ErrorBody, HealthResponse, ListUsersResponse,
    PutUserRequest, PutUserResponse, RemoveUserResponse,
};
use crate::auth::Token;
use crate::pin::{self, CertFingerprint, PinnedVerifier};

/// Why a call to an agent failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeError {
    /// 401: the token is missing or wrong (nothing was changed).
    Unauthorized,
    /// 400: the request was malformed (bad email, uuid, flow, JSON).
    BadRequest { message: String },
    /// 409: one email ↔ one uuid would break; remove the other binding first.
    Conflict { message: String },
    /// The agent or its core did not answer (connect error, deadline, 503). Retry later.
    Unavailable { message: String },
    /// Anything else: `status` (if an answer came), the agent's error kind and message.
    /// 502 `core_rejected` means the core's configuration needs an operator;
    /// `certificate_mismatch` (no status) means the agent presented another certificate than
    /// the pinned one, and the message names the node and both fingerprints.
    Other {
        status: Option<u16>,
        error: String,
        message: String,
    },
}

impl NodeError {
    /// True when retrying later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, NodeError::Unavailable { .. })
    }

    /// True when the agent presented another certificate than the pinned one: an operator
    /// must fix the catalog or find out what answers at the agent's address.
    pub fn is_certificate_mismatch(&self) -> bool {
        matches!(self, NodeError::Other { status: None, error, .. } if error == "certificate_mismatch")
    }
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeError::Unauthorized => {
                f.write_str("the node refused the token (401): check the node's token")
            }
            NodeError::BadRequest { message } => write!(f, "bad request (400): {message}"),
            NodeError::Conflict { message } => write!(f, "conflict (409): {message}"),
            NodeError::Unavailable { message } => write!(f, "node unavailable: {message}"),
            NodeError::Other {
                status,
                error,
                message,
            } => match status {
                Some(status) => write!(f, "node answered {status} {error}: {message}"),
                None => write!(f, "{error}: {message}"),
            },
        }
    }
}

impl std::error::Error for NodeError {}

/// Builds a [`NodeClient`].
#[derive(Debug)]
pub struct NodeClientBuilder {
    base_url: String,
    token: Token,
    timeout: Duration,
    converge_timeout: Duration,
    root_certificates: Vec<Vec<u8>>,
    pin: Option<CertFingerprint>,
    node_name: String,
}

impl NodeClientBuilder {
    /// Deadline of every call but converge (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Deadline of `PUT /v1/users` (default 120 s: tens of thousands of users).
    pub fn converge_timeout(mut self, timeout: Duration) -> Self {
        self.converge_timeout = timeout;
        self
    }

    /// Trusts this PEM certificate (e.g. the node's self-signed one) in addition to the
    /// public roots.
    pub fn root_certificate_pem(mut self, pem: &[u8]) -> Self {
        self.root_certificates.push(pem.to_vec());
        self
    }

    /// Accepts exactly the certificate with this SHA-256 fingerprint, whatever its names and
    /// dates (see [`crate::pin`]); needs an `https://` URL and no extra roots.
    pub fn pin_certificate(mut self, fingerprint: CertFingerprint) -> Self {
        self.pin = Some(fingerprint);
        self
    }

    /// Names the agent in errors (the service passes the node's catalog name).
    pub fn node_name(mut self, name: &str) -> Self {
        name.clone_into(&mut self.node_name);
        self
    }

    pub fn build(self) -> Result<NodeClient, NodeError> {
        let invalid = |message: String| NodeError::Other {
            status: None,
            error: "invalid_client_config".into(),
            message,
        };
        let mut base = Url::parse(&self.base_url)
            .map_err(|e| invalid(format!("base URL {:?}: {e}", self.base_url)))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(invalid(format!(
                "base URL {:?}: use http(s)://host:port",
                self.base_url
            )));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let mut http = reqwest::Client::builder()
            .connect_timeout(self.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("tollgate-node-client/", env!("CARGO_PKG_VERSION")));
        for pem in &self.root_certificates {
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|e| invalid(format!("root certificate: {e}")))?;
            http = http.add_root_certificate(cert);
        }
        if let Some(fingerprint) = self.pin {
            if base.scheme() != "https" {
                return Err(invalid(format!(
                    "base URL {:?}: a pinned certificate needs https://",
                    self.base_url
                )));
            }
            if !self.root_certificates.is_empty() {
                return Err(invalid(
                    "a pinned certificate and extra root certificates exclude each other".into(),
                ));
            }
            http = http.use_preconfigured_tls(pinned_tls(&self.node_name, fingerprint)?);
        }
        let http = http
            .build()
            .map_err(|e| invalid(format!("HTTP client: {e}")))?;
        Ok(NodeClient {
            http,
            base,
            token: self.token,
            timeout: self.timeout,
            converge_timeout: self.converge_timeout,
        })
    }
}

/// A client of one agent.
#[derive(Clone, Debug)]
pub struct NodeClient {
    http: reqwest::Client,
    base: Url,
    token: Token,
    timeout: Duration,
    converge_timeout: Duration,
}

impl NodeClient {
    /// A client with default deadlines for the agent at `base_url` (`http(s)://host:port`).
    pub fn new(base_url: &str, token: Token) -> Result<NodeClient, NodeError> {
        NodeClient::builder(base_url, token).build()
    }

    pub fn builder(base_url: &str, token: Token) -> NodeClientBuilder {
        NodeClientBuilder {
            base_url: base_url.to_owned(),
            token,
            timeout: Duration::from_secs(10),
            converge_timeout: Duration::from_secs(120),
            root_certificates: Vec::new(),
            pin: None,
            node_name: "(unnamed)".to_owned(),
        }
    }

    /// The agent's base URL.
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// `PUT /v1/users/{email}`: add or confirm a user (idempotent).
    pub async fn put_user(
        &self,
        email: &str,
        request: &PutUserRequest,
    ) -> Result<PutUserResponse, NodeError> {
        let url = self.user_url(email)?;
        self.call(Method::PUT, url, Some(request), self.timeout)
            .await
    }

    /// `DELETE /v1/users/{email}`: remove a user (idempotent).
    pub async fn remove_user(&self, email: &str) -> Result<RemoveUserResponse, NodeError> {
        let url = self.user_url(email)?;
        self.call::<(), _>(Method::DELETE, url, None, self.timeout)
            .await
    }

    /// `GET /v1/users`: the users with their traffic totals.
    pub async fn list_users(&self) -> Result<ListUsersResponse, NodeError> {
        let url = self.url("v1/users")?;
        self.call::<(), _>(Method::GET, url, None, self.timeout)
            .await
    }

    /// `PUT /v1/users`: make the node hold exactly these users.
    pub async fn converge(&self, request: &ConvergeRequest) -> Result<ConvergeResponse, NodeError> {
        let url = self.url("v1/users")?;
        self.call(Method::PUT, url, Some(request), self.converge_timeout)
            .await
    }

    /// `GET /v1/health`.
    pub async fn health(&self) -> Result<HealthResponse, NodeError> {
        let url = self.url("v1/health")?;
        self.call::<(), _>(Method::GET, url, None, self.timeout)
            .await
    }

    /// `GET /healthz` (no token): is the process answering?
    pub async fn healthz(&self) -> Result<(), NodeError> {
        let url = self.url("healthz")?;
        let response = self
            .http
            .get(url)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(transport_error)?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(classify(response.status(), None))
        }
    }

    fn url(&self, path: &str) -> Result<Url, NodeError> {
        self.base.join(path).map_err(|e| NodeError::Other {
            status: None,
            error: "invalid_url".into(),
            message: e.to_string(),
        })
    }

    fn user_url(&self, email: &str) -> Result<Url, NodeError> {
        let mut url = self.url("v1/users")?;
        url.path_segments_mut()
            .map_err(|()| NodeError::Other {
                status: None,
                error: "invalid_url".into(),
                message: "the base URL cannot take a path".into(),
            })?
            .push(email);
        Ok(url)
    }

    async fn call<B, T>(
        &self,
        method: Method,
        url: Url,
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<T, NodeError>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let mut request = self
            .http
            .request(method, url)
            .bearer_auth(self.token.expose())
            .timeout(timeout);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport_error)?;
        if status.is_success() {
            serde_json::from_slice(&bytes).map_err(|e| NodeError::Other {
                status: Some(status.as_u16()),
                error: "invalid_response".into(),
                message: format!("the agent's answer does not parse: {e}"),
            })
        } else {
            Err(classify(
                status,
                serde_json::from_slice::<ErrorBody>(&bytes).ok(),
            ))
        }
    }
}

/// A rustls configuration that trusts only the pinned certificate (ring, the agent's
/// protocol versions, HTTP/1.1 as the agent speaks it).
fn pinned_tls(
    node: &str,
    fingerprint: CertFingerprint,
) -> Result<tokio_rustls::rustls::ClientConfig, NodeError> {
    use tokio_rustls::rustls::ClientConfig;
    use tokio_rustls::rustls::crypto::ring;
    let provider = Arc::new(ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| NodeError::Other {
            status: None,
            error: "invalid_client_config".into(),
            message: format!("TLS setup: {e}"),
        })?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedVerifier::new(
            node,
            fingerprint,
            provider,
        )))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn classify(status: StatusCode, body: Option<ErrorBody>) -> NodeError {
    let (error, message) = match body {
        Some(body) => (body.error, body.message.unwrap_or_default()),
        None => (String::new(), String::new()),
    };
    match status {
        StatusCode::UNAUTHORIZED => NodeError::Unauthorized,
        StatusCode::BAD_REQUEST => NodeError::BadRequest { message },
        StatusCode::CONFLICT => NodeError::Conflict { message },
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => {
            NodeError::Unavailable { message }
        }
        other => NodeError::Other {
            status: Some(other.as_u16()),
            error,
            message,
        },
    }
}

/// Connect errors and deadlines are "unavailable"; the message never contains the token
/// (reqwest errors carry the URL, which does not hold it).
fn transport_error(error: reqwest::Error) -> NodeError {
    if let Some(mismatch) = pin::find_mismatch(&error) {
        return NodeError::Other {
            status: None,
            error: "certificate_mismatch".into(),
            message: mismatch.to_string(),
        };
    }
    let kind = if error.is_timeout() {
        "no answer before the deadline"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "transport error"
    };
    let mut message = format!("{kind}: {error}");
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    NodeError::Unavailable { message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_encoded_as_one_path_segment() {
        let client = NodeClient::new("http://127.0.0.1:9090", Token::generate()).unwrap();
        assert_eq!(
            client.user_url("a+b@x.org").unwrap().as_str(),
            "http://127.0.0.1:9090/v1/users/a+b@x.org"
        );
        assert_eq!(
            client.user_url("a/b c").unwrap().as_str(),
            "http://127.0.0.1:9090/v1/users/a%2Fb%20c"
        );
        let prefixed = NodeClient::new("https://node.example/agent", Token::generate()).unwrap();
        assert_eq!(
            prefixed.url("v1/health").unwrap().as_str(),
            "https://node.example/agent/v1/health"
        );
        assert!(NodeClient::new("ftp://x", Token::generate()).is_err());
    }

    #[test]
    fn statuses_map_to_the_documented_errors() {
        let body = |e: &str| {
            Some(ErrorBody {
                error: e.into(),
                message: Some("why".into()),
            })
        };
        assert_eq!(
            classify(StatusCode::UNAUTHORIZED, body("unauthorized")),
            NodeError::Unauthorized
        );
        assert_eq!(
            classify(StatusCode::BAD_REQUEST, body("bad_request")),
            NodeError::BadRequest {
                message: "why".into()
            }
        );
        assert_eq!(
            classify(StatusCode::CONFLICT, body("conflict")),
            NodeError::Conflict {
                message: "why".into()
            }
        );
        assert!(classify(StatusCode::SERVICE_UNAVAILABLE, body("core_unavailable")).is_retryable());
        assert_eq!(
            classify(StatusCode::BAD_GATEWAY, body("core_rejected")),
            NodeError::Other {
                status: Some(502),
                error: "core_rejected".into(),
                message: "why".into()
            }
        );
    }
}
