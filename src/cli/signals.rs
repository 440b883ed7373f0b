//! Ctrl-C for the commands that must not simply die of it: `flow try` (which must shut its
//! sandbox down) and `flow run --wait` (which says the run goes on).

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

/// Installs `handler` for `signals`, with system calls it interrupts restarted or not.
///
/// # Safety
/// `handler` may only do async-signal-safe work (store to an atomic, `write(2)`,
/// `_exit(2)`), and must not read anything that is set after this call.
pub(super) unsafe fn handle(
    handler: extern "C" fn(libc::c_int),
    restart: bool,
    signals: &[Signal],
) {
    let flags = if restart {
        SaFlags::SA_RESTART
    } else {
        SaFlags::empty()
    };
    let action = SigAction::new(SigHandler::Handler(handler), flags, SigSet::empty());
    for &signal in signals {
        // SAFETY: the caller vouches for the handler (see above).
        let _ = unsafe { sigaction(signal, &action) };
    }
}
