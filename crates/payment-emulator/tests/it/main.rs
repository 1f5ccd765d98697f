//! Integration tests of the payment emulator over real HTTP on 127.0.0.1: both APIs through
//! reqwest, webhooks received by a real local server.

mod common;
mod cryptopay;
mod delivery;
mod limits;
mod pages;
mod process;
mod yookassa;
