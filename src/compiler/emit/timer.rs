//! The timer trigger source: `schedule:` (with `timezone`, `catch_up`, `jitter`) as a
//! `.timer` unit that starts the workflow's trigger unit.

use super::*;

pub(super) fn timer_unit(wf: &Workflow, timer: &Timer, opts: &Shared) -> String {
    let schedule = &timer.schedule;
    let mut u = new_unit(opts, 0, &["Schedule of flow workflow ", &wf.name]);
    let calendar = |out: &mut String, cal: &str| {
        push_raw(out, cal);
        if let Some(tz) = timer.timezone.as_deref() {
            out.push(' ');
            push_raw(out, tz);
        }
    };
    u.section("Timer");
    match schedule {
        Schedule::Cron { calendars, .. } => {
            for cal in calendars {
                u.set_with("OnCalendar", |out| calendar(out, cal));
            }
        }
        Schedule::Calendar(cal) => {
            u.set_with("OnCalendar", |out| calendar(out, cal));
        }
        Schedule::Every(every) => {
            // First run one interval after the timer starts, then one interval after each
            // run started.
            u.set_with("OnActiveSec", |out| push_systemd(out, *every))
                .set_with("OnUnitActiveSec", |out| push_systemd(out, *every));
        }
        Schedule::Reboot => {
            u.set("OnBootSec", "0");
        }
    }
    if timer.catch_up {
        u.set("Persistent", "yes");
    }
    if let Some(j) = timer.jitter {
        u.set_with("RandomizedDelaySec", |out| push_systemd(out, j));
    }
    // The default accuracy of one minute would start runs up to a minute late. An `every`
    // schedule counts from the last run's start, so any lateness adds up run after run (at
    // 1s, `every: 2s` fired every 3s): it gets 1ms.
    let accuracy = match schedule {
        Schedule::Every(_) => "1ms",
        _ => "1s",
    };
    u.set("AccuracySec", accuracy)
        .set("Unit", &names::trigger_unit(&wf.name));
    u.section("Install").set("WantedBy", "timers.target");
    u.section(x_flow::SECTION).set(x_flow::WORKFLOW, &wf.name);
    match schedule {
        Schedule::Cron { expr, .. } => u.set_with(x_flow::CRON, |out| push_raw(out, expr)),
        Schedule::Reboot => u.set(x_flow::CRON, "@reboot"),
        Schedule::Calendar(cal) => u.set_with(x_flow::CALENDAR, |out| push_raw(out, cal)),
        Schedule::Every(d) => u.set_with(x_flow::EVERY, |out| push_systemd(out, *d)),
    };
    u.finish()
}
