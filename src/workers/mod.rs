//! Background workers, each with a `try_run_once` that tests call instead of waiting.

pub mod mail;
pub mod webhooks;
