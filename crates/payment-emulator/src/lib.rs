//! # payment-emulator
//!
//! Local emulators of two payment providers' APIs — Crypto Pay (@CryptoBot) and YooKassa v3 —
//! in one HTTP server: the test double of Tollgate's provider clients, webhooks, watcher and
//! reconciler, and the back-end of `tollgate sandbox`'s "crypto" and "card" payments.
//!
//! Why it exists: there is no network in tests, and the failures that cost the earlier system
//! money — lost webhooks, duplicated ones, a signature checked over re-serialized JSON, an API
//! that hangs while an invoice is created, a retry that makes a second payment — only show
//! against something that behaves like the providers: their request and response shapes, status
//! machines, signatures, idempotence keys, retry schedules and error shapes.
//!
//! ```no_run
//! use payment_emulator::{PaymentEmulator, PaymentEmulatorConfig, Provider};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let emulator = PaymentEmulator::start(PaymentEmulatorConfig::default()).await?;
//! let control = emulator.client();
//! control.set_webhook(Provider::Cryptopay, Some("http://127.0.0.1:9000/payments/cryptopay")).await?;
//! // Point the code under test at emulator.cryptopay_api_url() with emulator.cryptopay_token(),
//! // let it create an invoice, then pay it as the payer would:
//! let invoice = control.invoices().await?.remove(0);
//! control.pay_invoice(invoice.invoice_id).await?; // queues the signed `invoice_paid` webhook
//! emulator.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! Modules, following a request's path: [`server`] starts everything; [`cryptopay`] serves
//! `/api/<method>`, [`yookassa`] serves `/v3/...`, [`page`] the payment pages; [`state`] holds
//! the objects, [`notify`] delivers webhooks and fires deadlines on the [`clock`]; [`faults`]
//! injects failures; [`control`] is the control API and its client; [`util`] signs and formats.

pub mod clock;
pub mod config;
pub mod control;
pub mod cryptopay;
pub mod faults;
pub mod model;
pub mod notify;
pub mod page;
pub mod server;
pub mod state;
pub mod util;
pub mod yookassa;

pub use config::{
    CryptoPayConfig, Limits, Network, PaymentEmulatorConfig, WebhookConfig, YooKassaConfig,
};
pub use control::{ControlClient, ControlError};
pub use model::{
    Amount, Attempt, CancelOptions, CancellationDetails, Confirmation, CryptoPayUpdate, FaultKind,
    FaultSpec, Invoice, InvoiceStatus, Notification, NotificationAction, NotificationRule,
    NotificationState, PayOptions, Payment, PaymentList, PaymentMethod, PaymentStatus, Provider,
    Recipient, Refund, WebhookUrls, YooKassaNotification,
};
pub use server::{PaymentEmulator, RunningPaymentEmulator, StartError};
pub use util::cryptopay_signature;
