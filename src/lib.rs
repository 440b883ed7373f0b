//! flow: compile YAML workflows into plain systemd units, and keep their history.
//!
//! The crate is split by what touches the system:
//! - [`compiler`] is pure: YAML text in, unit files (as text) or located errors out. No I/O.
//! - [`install`] writes compiled units to a unit directory atomically and diffs them.
//! - [`systemd`] talks to a systemd manager over D-Bus.
//! - [`runs`] starts runs and reads their state from systemd.
//! - [`sandbox`] boots a throwaway systemd where PID 1 is not systemd (tests, `flow try`).
//! - [`store`] keeps run history in SQLite; [`supervisor`] records runs and drives retries,
//!   deadlines and overlap rules.
//! - [`vocabulary`] names how runs and attempts end and what starts them, once for all.
//! - [`cli`] is the command line on top of all of them; [`home`] finds a user's own
//!   directories.

pub mod cli;
pub mod compiler;
pub mod home;
pub mod install;
pub mod runs;
pub mod sandbox;
pub mod store;
pub mod supervisor;
pub mod systemd;
pub mod vocabulary;
