//! The end-to-end tests, one crate: each boots a throwaway systemd in a sandbox (through
//! `harness::Boot`) or runs `flow try`, which boots its own, and needs root for it. Without
//! root they skip LOUDLY; with `CI=true` a skip is a failure.
//!
//! One module a subject; `cargo test --test e2e supervisor::` runs one of them.
// A test may unwrap, expect and panic: a failed test is the point ([lints] deny them elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;
mod harness;

/// The supervisor's journal events, read back against docs/events.md.
mod events;
/// Every example under `flow try`.
mod examples;
/// What a task runs, as whom and where, and its output in the journal.
mod exec;
/// `flow try` on the ways a try ends, and what its sandbox isolates.
mod flow_try;
/// Task output that would drive a terminal; thousands of upstreams.
mod hostile;
/// The run and history commands' JSON, on real runs, against their schemas.
mod json_runs;
/// Schedules, pause and resume, apply and remove.
mod lifecycle;
/// The Debian package, installed, used and purged with apt.
mod package;
/// How runs go on systemd: order, parallelism, failures, timeouts, limits.
mod runs;
/// The sandbox itself.
mod sandbox;
/// The supervisor: retries, deadlines, overlap, cancel, recovery, the history.
mod supervisor;
/// The supervisor's benchmarks (ignored; docs/benchmarks.md).
mod supervisor_bench;
/// The supervisor as the package runs it, hardened.
mod supervisor_unit;
/// The D-Bus client against a real systemd.
mod systemd_client;
