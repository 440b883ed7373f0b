//! Hand-written D-Bus proxy for the part of `org.freedesktop.systemd1.Manager` that flow uses.
//!
//! Written by hand rather than generated so that the surface stays small and every method
//! here is one flow actually calls. Signatures follow `org.freedesktop.systemd1(5)` of
//! systemd 252; unit and service properties are read with `Properties.GetAll` instead of one
//! typed property per call, which keeps a state read at two round trips.

use zbus::zvariant::{ObjectPath, OwnedObjectPath};

/// One row of `ListUnitsByPatterns`: name, description, load, active, sub state, followed
/// unit, object path, job id, job type, job path.
pub(crate) type UnitRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    OwnedObjectPath,
    u32,
    String,
    OwnedObjectPath,
);

/// One change reported by `EnableUnitFiles`/`DisableUnitFiles`: type, file name, destination.
pub(crate) type ChangeRow = (String, String, String);

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1",
    gen_async = false,
    blocking_name = "ManagerProxy"
)]
pub(crate) trait Manager {
    /// Asks the manager to send signals to this client; without it a bus client gets none.
    fn subscribe(&self) -> zbus::Result<()>;

    /// Re-reads unit files; the reply comes once the reload is complete.
    fn reload(&self) -> zbus::Result<()>;

    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;

    fn stop_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;

    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;

    /// Pins a unit for as long as this client is connected (or until `UnrefUnit`), so that
    /// systemd does not unload it, and forget its last run, once it is inactive.
    fn ref_unit(&self, name: &str) -> zbus::Result<()>;

    fn unref_unit(&self, name: &str) -> zbus::Result<()>;

    fn reset_failed_unit(&self, name: &str) -> zbus::Result<()>;

    fn enable_unit_files(
        &self,
        files: &[&str],
        runtime: bool,
        force: bool,
    ) -> zbus::Result<(bool, Vec<ChangeRow>)>;

    fn disable_unit_files(&self, files: &[&str], runtime: bool) -> zbus::Result<Vec<ChangeRow>>;

    fn list_units_by_patterns(
        &self,
        states: &[&str],
        patterns: &[&str],
    ) -> zbus::Result<Vec<UnitRow>>;

    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: ObjectPath<'_>,
        unit: &str,
        result: &str,
    ) -> zbus::Result<()>;

    /// Whether units account CPU time unless they say otherwise (`DefaultCPUAccounting=`).
    #[zbus(
        property(emits_changed_signal = "false"),
        name = "DefaultCPUAccounting"
    )]
    fn default_cpu_accounting(&self) -> zbus::Result<bool>;

    /// Whether units account memory unless they say otherwise (`DefaultMemoryAccounting=`).
    #[zbus(property(emits_changed_signal = "false"))]
    fn default_memory_accounting(&self) -> zbus::Result<bool>;

    /// The manager's version, such as `252.38-1~deb12u1`.
    #[zbus(property(emits_changed_signal = "const"))]
    fn version(&self) -> zbus::Result<String>;

    /// `initializing`, `starting`, `running`, `degraded`, `maintenance` or `stopping`.
    #[zbus(property(emits_changed_signal = "false"))]
    fn system_state(&self) -> zbus::Result<String>;
}
