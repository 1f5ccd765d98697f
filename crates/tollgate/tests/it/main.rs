//! Integration tests of the `tollgate` crate, one binary for fast linking.
//! Storage tests run on both backends (see `common::db_test!`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod access_api;
mod access_data_plane;
mod admin_console;
mod architecture;
mod backups;
mod bot_crash;
mod bot_journey;
mod bot_payments;
mod config_cli;
mod constraints;
mod deploy_files;
mod import_atcbot;
mod jobs_contract;
mod jobs_items;
mod jobs_month;
mod jobs_processes;
mod leases;
mod migrations;
mod nodes_kill;
mod nodes_provisioning;
mod nodes_reconcile;
mod nodes_tls;
mod parsers_fuzz;
mod pipeline_budget;
mod pipeline_claims;
mod pipeline_crash;
mod pipeline_dispatch;
mod pipeline_outages;
mod pipeline_outbox;
mod pipeline_shutdown;
mod pipeline_webhook;
mod queue_statistics;
mod readiness;
mod sandbox;
mod sandbox_browser;
mod shutdown;
mod store_cancellation;
mod store_durability;
mod telegram_proxy;
mod time_zone;
