//! Writes the driver's status to one Felix connection: the heartbeat and endpoint status as
//! `FromDataplane` frames. The status itself comes from `crate::status`; this is only its wire
//! side.

use std::time::{Duration, SystemTime};

use tokio::io::AsyncWrite;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::debug;

use super::codec::write_frame;
use super::outbound;
use crate::status::StatusHub;

fn iso_now() -> String {
    // Second precision, as Felix's own reports (RFC 3339 is a profile of ISO 8601).
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// Writes status to one Felix connection until a write fails: a heartbeat right away and then
/// every `interval` (`None` disables it, as `ReportingIntervalSecs = 0` does in Felix), the
/// replayed book, then every status change as it comes.
pub async fn run_writer<W: AsyncWrite + Unpin>(
    mut w: W,
    hub: &mut StatusHub,
    mut interval: watch::Receiver<Option<Duration>>,
) -> std::io::Result<()> {
    let mut seq: u64 = 0;
    let mut next_seq = || {
        let s = seq;
        seq += 1;
        s
    };
    let started = hub.started;
    let heartbeat =
        |seq: u64| outbound::heartbeat_frame(seq, &iso_now(), started.elapsed().as_secs_f64());

    let mut period = *interval.borrow_and_update();
    let mut last_beat = Instant::now();
    write_frame(&mut w, &heartbeat(next_seq())).await?;
    for ev in hub.book.replay() {
        write_frame(&mut w, &outbound::status_frame(next_seq(), &ev)).await?;
    }
    let mut interval_open = true;
    let mut events_open = true;
    loop {
        let deadline = period.map(|p| last_beat + p);
        tokio::select! {
            _ = sleep_until_opt(deadline) => {
                last_beat = Instant::now();
                write_frame(&mut w, &heartbeat(next_seq())).await?;
            }
            changed = interval.changed(), if interval_open => {
                if changed.is_err() {
                    interval_open = false;
                    continue;
                }
                period = *interval.borrow_and_update();
                debug!(interval = ?period, "status reporting interval changed");
            }
            ev = hub.rx.recv(), if events_open => match ev {
                Some(ev) => {
                    if hub.book.record(&ev) {
                        write_frame(&mut w, &outbound::status_frame(next_seq(), &ev)).await?;
                    }
                }
                None => events_open = false,
            },
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
