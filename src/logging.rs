//! Logging setup: `tracing` to stderr (Felix copies the driver's output into its own log),
//! human-readable by default. The level comes from CALICO_VPP_LOG_LEVEL when set, otherwise
//! from Felix's `LogSeverityScreen` as soon as Felix sends it.

use std::io::IsTerminal;

use calico_model::felix_config::LogSeverity;
use tracing::info;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Registry};

use crate::config::LogFormat;

/// Changes the log level at run time.
#[derive(Clone)]
pub struct LogControl {
    handle: Option<reload::Handle<EnvFilter, Registry>>,
    /// Set from the environment / CLI: Felix's setting does not override it.
    pinned: bool,
}

impl LogControl {
    /// A control that does nothing (tests, or when a subscriber was installed elsewhere).
    pub fn detached() -> Self {
        LogControl {
            handle: None,
            pinned: true,
        }
    }

    /// Applies Felix's `LogSeverityScreen` unless the operator pinned a level.
    pub fn felix_severity(&self, severity: LogSeverity) {
        if self.pinned {
            return;
        }
        if let Some(h) = &self.handle {
            if h.reload(EnvFilter::new(severity.as_filter())).is_ok() {
                info!(
                    level = severity.as_filter(),
                    "log level set from Felix's LogSeverityScreen"
                );
            }
        }
    }
}

/// Installs the global subscriber. `level` (already validated) pins the filter.
pub fn init(format: LogFormat, level: Option<&str>) -> LogControl {
    let filter = EnvFilter::new(level.unwrap_or("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let (human, json) = match format {
        LogFormat::Human => (
            Some(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_target(false),
            ),
            None,
        ),
        LogFormat::Json => (None, Some(fmt::layer().json().with_writer(std::io::stderr))),
    };
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(human)
        .with(json)
        .try_init()
        .is_ok();
    LogControl {
        handle: installed.then_some(handle),
        pinned: level.is_some(),
    }
}
