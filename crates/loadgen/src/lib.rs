//! `ses-webhook-loadgen`: signs realistic SNS/SES messages with the test key, posts them to a
//! server on this machine (closed loop at a concurrency, or open loop at a rate), reports
//! throughput and latency, and checks that the database holds exactly what was acknowledged.
//!
//! `check-suppressions` loads `POST /api/v1/suppressions/check` instead ([`suppressions`]).
//!
//! Load only ever goes to the loopback interface ([`guard`]), bounded in time and count.

pub mod check;
pub mod guard;
pub mod mix;
pub mod plan;
pub mod rng;
pub mod run;
pub mod stats;
pub mod suppressions;
