//! The operator subcommands that are not the driver itself: `check-vpp` (is this VPP one the
//! driver can program?) and `sim` (serve the built-in simulator). They print for a person and
//! return an outcome; `main` turns it into the exit code. They never change a VPP.

use std::path::Path;
use std::time::Duration;

use vpp_bindings::client::{ClientConfig, ClientError};
use vpp_bindings::compat::{self, CompatReport, CLIENT_MESSAGES};

use crate::dataplane::vpp::required_messages;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("cannot connect to VPP at {path}")]
    Connect {
        path: String,
        #[source]
        source: ClientError,
    },
    #[error(
        "{path} is in use by a running server (a VPP?); refusing to replace it with the simulator"
    )]
    SocketInUse { path: String },
    #[error("simulator: {0}")]
    Sim(#[from] vpp_sim::SimError),
}

/// Every message the driver needs (its dataplane and the client's own), deduplicated.
pub fn driver_messages() -> Vec<vpp_bindings::message::MessageInfo> {
    let mut all = required_messages();
    for m in CLIENT_MESSAGES {
        if !all.iter().any(|x| x.name_crc == m.name_crc) {
            all.push(*m);
        }
    }
    all
}

/// Connects without the connect-time check (so that an incompatible VPP still yields a
/// report), asks for the version and checks every message the driver uses.
pub async fn check_vpp(
    socket: &Path,
    transport: &crate::dataplane::vpp::ApiTransport,
    timeout: Duration,
) -> Result<CompatReport, CommandError> {
    let config = ClientConfig {
        name: "calico-vpp-driver-check".into(),
        request_timeout: timeout,
        ..ClientConfig::default()
    };
    let client = crate::dataplane::vpp::connect_client(socket, transport, config)
        .await
        .map_err(|source| CommandError::Connect {
            path: match transport {
                crate::dataplane::vpp::ApiTransport::Socket => socket.display().to_string(),
                crate::dataplane::vpp::ApiTransport::Shm { prefix } => format!(
                    "its shared-memory API (segment prefix {})",
                    prefix.as_deref().unwrap_or("none")
                ),
            },
            source,
        })?;
    let report = compat::check(&client, &driver_messages()).await;
    // Leaving politely is courtesy only; the report is what matters.
    let _ = client.close().await;
    Ok(report)
}

/// The report for a person: version, every mismatch (all messages with `verbose`), and the
/// verdict line.
pub fn render_report(report: &CompatReport, verbose: bool) -> String {
    if verbose {
        return report.to_string();
    }
    let full = report.to_string();
    full.lines()
        .filter(|l| !l.starts_with("  ok "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Serves the simulator on `path` until cancelled. Refuses a path something is listening on:
/// the simulator replaces its socket file, which must never happen to a running VPP.
pub async fn serve_sim(path: &Path) -> Result<(), CommandError> {
    if path.exists() && tokio::net::UnixStream::connect(path).await.is_ok() {
        return Err(CommandError::SocketInUse {
            path: path.display().to_string(),
        });
    }
    vpp_sim::serve(path, vpp_sim::Options::default()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn simulator_is_compatible_with_every_message_the_driver_uses() {
        let dir = tempfile::tempdir().unwrap();
        let sim = vpp_sim::Simulator::start(dir.path().join("api.sock"))
            .await
            .unwrap();
        let report = check_vpp(
            sim.socket_path(),
            &Default::default(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert!(report.is_compatible(), "{report}");
        assert_eq!(report.entries.len(), driver_messages().len());
        assert!(report
            .vpp_version
            .as_deref()
            .unwrap()
            .starts_with("simulator of"));
        let text = render_report(&report, false);
        assert!(text.ends_with("=> compatible"), "{text}");
        assert!(!text.contains("  ok "), "{text}");
    }

    #[tokio::test]
    async fn sim_refuses_a_socket_a_server_is_listening_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.sock");
        let _busy = tokio::net::UnixListener::bind(&path).unwrap();
        assert!(matches!(
            serve_sim(&path).await,
            Err(CommandError::SocketInUse { .. })
        ));
    }

    #[tokio::test]
    async fn check_of_an_absent_socket_is_a_connect_error() {
        let dir = tempfile::tempdir().unwrap();
        let r = check_vpp(
            &dir.path().join("none.sock"),
            &Default::default(),
            Duration::from_secs(1),
        )
        .await;
        assert!(matches!(r, Err(CommandError::Connect { .. })));
    }
}
