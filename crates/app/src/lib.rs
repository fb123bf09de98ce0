//! The composition root: settings, telemetry, the adapters that connect `sns-verify` and
//! reqwest to the domain's ports, the actix-web application, and the `ses-webhook` commands.
//! This is the only crate that knows every other crate.

pub mod commands;
pub mod delivery;
pub mod list_commands;
pub mod metrics;
pub mod settings;
pub mod sns;
pub mod sqs;
pub mod startup;
pub mod telemetry;

pub use settings::Settings;
pub use startup::{Application, ServeOptions};
