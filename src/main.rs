//! calico-vpp-driver entry point: parse the command line, set up logging, run the chosen mode,
//! and turn its outcome into an exit code (0 on clean EOF or SIGTERM, 1 on a fatal error).

use std::os::fd::OwnedFd;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

use calico_vpp_driver::agent::{Agent, SessionEnd};
use calico_vpp_driver::cli::{Cli, Command};
use calico_vpp_driver::config::DriverConfig;
use calico_vpp_driver::felix::transport::{self, ProxyEnd};
use calico_vpp_driver::{admin, commands, demo, hook, logging, status};

/// Installed under this name (a symlink or copy), the binary is the Felix-side relay: Felix
/// starts its driver without arguments, so the name has to select the mode.
const PROXY_ARGV0: &str = "calico-vpp-felix-proxy";

fn main() -> ExitCode {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let invoked_as_proxy = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .is_some_and(|n| n == PROXY_ARGV0);
    if invoked_as_proxy {
        args.insert(1, "felix-proxy".into());
    }
    let cli = Cli::parse_from(args);
    // Felix's fds are claimed before the runtime exists (see `take_felix_fds`).
    let fds = match cli.command {
        None | Some(Command::FelixProxy { .. }) => match transport::take_felix_fds() {
            Ok(fds) => Some(fds),
            Err(e) => {
                eprintln!("calico-vpp-driver: {e}");
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    let config = match DriverConfig::from_settings(&cli.settings) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("calico-vpp-driver: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    // The demo and check-vpp print a report on stdout; their logs stay quiet unless asked for.
    let level = match (&cli.command, config.log_level.as_deref()) {
        (Some(Command::Demo { .. }), None) => Some("warn"),
        (Some(Command::CheckVpp { .. }), None) => Some("error"),
        (_, level) => level,
    };
    let log = logging::init(config.log_format, level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let admin_socket = cli.settings.admin_socket.clone();
    let metrics_addr = (cli.settings.prometheus_port != 0).then(|| {
        std::net::SocketAddr::new(cli.settings.prometheus_host, cli.settings.prometheus_port)
    });
    let code = runtime.block_on(async move {
        let (mut term, mut int) = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(t), Ok(i)) => (t, i),
            (Err(e), _) | (_, Err(e)) => {
                error!(error = %e, "cannot install the SIGTERM/SIGINT handlers");
                return ExitCode::FAILURE;
            }
        };
        tokio::select! {
            r = run(cli.command, fds, config, log, admin_socket, metrics_addr) => match r {
                Ok(code) => code,
                Err(e) => {
                    error!("fatal: {e:#}");
                    ExitCode::FAILURE
                }
            },
            _ = term.recv() => {
                info!("SIGTERM received; exiting");
                ExitCode::SUCCESS
            }
            _ = int.recv() => {
                info!("SIGINT received; exiting");
                ExitCode::SUCCESS
            }
        }
    });
    // Tasks blocked in reads must not delay the exit Felix is waiting for.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    code
}

async fn run(
    command: Option<Command>,
    fds: Option<(OwnedFd, OwnedFd)>,
    config: DriverConfig,
    log: logging::LogControl,
    admin_socket: std::path::PathBuf,
    metrics_addr: Option<std::net::SocketAddr>,
) -> anyhow::Result<ExitCode> {
    if let (Some(addr), None | Some(Command::Run { .. })) = (metrics_addr, &command) {
        calico_vpp_driver::metrics::serve(addr)
            .await
            .context("starting the metrics endpoint")?;
    }
    let new_agent = |log| -> anyhow::Result<Agent> {
        let (status_tx, status_rx) = status::channel();
        let (hook, monitor) = hook::start_dataplane(&config, status_tx)?;
        let agent = Agent::new(hook, status_rx, log, config.max_frame_bytes)
            .with_hostname(config.node_name.clone())
            .with_service_cidrs(config.service_cidrs.clone());
        Ok(with_services(with_cni(agent, &config, monitor), &config))
    };
    // Operators' questions; the driver runs without them when the socket cannot be had.
    let with_admin = |agent: Agent| async {
        if admin_socket.as_os_str().is_empty() || admin_socket.as_os_str() == "off" {
            return agent;
        }
        // VPP's own verdicts come from a real VPP only (the simulator has no npol CLI).
        let vpp = (config.dataplane == calico_vpp_driver::config::DataplaneKind::Vpp)
            .then(|| config.api_socket.clone());
        match admin::serve(&admin_socket, vpp).await {
            Ok(queries) => agent.with_admin(queries),
            Err(e) => {
                warn!(error = %e, "no admin socket (explain will not reach this driver)");
                agent
            }
        }
    };
    match command {
        None => {
            info!(
                version = env!("CARGO_PKG_VERSION"),
                dataplane = ?config.dataplane,
                max_frame_bytes = config.max_frame_bytes,
                "starting as Felix's dataplane driver (fds 3/4)"
            );
            let mut agent = with_admin(new_agent(log)?).await;
            let (r, w) = felix_streams(fds)?;
            match agent.run_session(r, w).await {
                Ok(SessionEnd::FelixClosed) => {
                    info!("Felix closed the stream; exiting");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Err(e).context("Felix session failed"),
            }
        }
        Some(Command::Run { felix_socket }) => {
            info!(
                version = env!("CARGO_PKG_VERSION"),
                dataplane = ?config.dataplane,
                socket = %felix_socket.display(),
                "starting in socket mode"
            );
            let mut agent = with_admin(new_agent(log)?).await;
            let listener = transport::listen(&felix_socket)?;
            agent.serve(listener, &felix_socket).await?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::FelixProxy { socket }) => {
            let (r, w) = felix_streams(fds)?;
            let stream = transport::connect(&socket, config.proxy_connect_timeout).await?;
            info!(socket = %socket.display(), "relaying Felix's fds 3/4 to the driver");
            match transport::relay(r, w, stream)
                .await
                .context("relay failed")?
            {
                ProxyEnd::FelixClosed => Ok(ExitCode::SUCCESS),
                ProxyEnd::DriverClosed => {
                    error!("the driver closed the connection while Felix was still connected");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Some(Command::Demo { keep, sim }) => {
            let _ = log;
            let options = demo::DemoOptions::from_env(&config, keep, sim);
            let mut out = std::io::stdout();
            let outcome = demo::run(options, &mut out).await?;
            Ok(if outcome.all_agree() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Some(Command::CheckVpp {
            vpp_socket,
            verbose,
        }) => {
            let socket = vpp_socket.unwrap_or_else(|| config.api_socket.clone());
            let report = commands::check_vpp(
                &socket,
                &config.api_transport,
                std::time::Duration::from_secs(5),
            )
            .await?;
            match &config.api_transport {
                calico_vpp_driver::dataplane::vpp::ApiTransport::Socket => {
                    println!("VPP API socket: {}", socket.display())
                }
                calico_vpp_driver::dataplane::vpp::ApiTransport::Shm { prefix } => println!(
                    "VPP API shared memory, segment prefix: {}",
                    prefix.as_deref().unwrap_or("(none)")
                ),
            }
            println!("{}", commands::render_report(&report, verbose));
            Ok(if report.is_compatible() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Some(Command::Explain {
            from,
            to,
            proto,
            port,
            json,
        }) => {
            let request = admin::AdminRequest::Explain(calico_compile::explain::FlowQuery {
                from,
                to,
                proto,
                port,
            });
            let reply = admin::ask(&admin_socket, &request)
                .await
                .context("asking the driver")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&reply)?);
            }
            match reply {
                admin::AdminReply::Explained(e) => {
                    if !json {
                        print!("{}", admin::render(&e));
                    }
                    Ok(if e.directions.iter().all(|d| d.agree) {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(3)
                    })
                }
                admin::AdminReply::Error(why) => {
                    eprintln!("calico-vpp-driver explain: {why}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Some(Command::Sim { socket }) => {
            info!(socket = %socket.display(), "serving the VPP simulator (not a VPP) until SIGTERM");
            commands::serve_sim(&socket).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Serves the CNI plugin (pods' interfaces) beside Felix, when configured and there is a
/// dataplane to build them in. The driver runs without it when its socket cannot be had.
fn with_cni(agent: Agent, config: &DriverConfig, monitor: Option<hook::HookMonitor>) -> Agent {
    use calico_vpp_driver::cni;
    use calico_vpp_driver::config::DataplaneKind;
    let (Some(path), Some(monitor)) = (&config.cni_socket, monitor) else {
        return agent;
    };
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    // Pods outlive the driver only with a real VPP (the simulator starts empty every run).
    let store =
        (config.dataplane == DataplaneKind::Vpp).then(|| cni::PodStore::in_dir(&config.state_dir));
    let net: std::sync::Arc<dyn cni::PodNetwork> = match config.dataplane {
        DataplaneKind::Sim => std::sync::Arc::new(cni::SimNetwork),
        _ => std::sync::Arc::new(cni::LinuxNetwork),
    };
    let server = cni::CniServer::new(
        tx,
        monitor.summary,
        net,
        config.pods.clone(),
        std::time::Duration::from_secs(4),
    );
    match cni::serve(path, server) {
        // The server runs for the life of the process.
        Ok(_task) => agent.with_pods(rx, cni::PodBook::new(store)),
        Err(e) => {
            warn!(error = %e, "no CNI server: pods cannot be wired by this driver");
            agent
        }
    }
}

/// Watches the API server's Services and EndpointSlices for the agent, when configured. The
/// watch keeps trying (and the driver keeps the services it programmed) while the API server
/// cannot be reached.
fn with_services(agent: Agent, config: &DriverConfig) -> Agent {
    if !config.services || config.dataplane == calico_vpp_driver::config::DataplaneKind::None {
        return agent;
    }
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    tokio::spawn(async move {
        loop {
            match kube_watch::client_from_env().await {
                Ok(client) => {
                    info!("watching Kubernetes Services and EndpointSlices");
                    kube_watch::watch(client, tx.clone()).await;
                    if tx.is_closed() {
                        return;
                    }
                }
                Err(e) => warn!(error = %e, "no Kubernetes client yet; services wait"),
            }
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        }
    });
    agent.with_kube(rx)
}

fn felix_streams(
    fds: Option<(OwnedFd, OwnedFd)>,
) -> anyhow::Result<(transport::BoxRead, transport::BoxWrite)> {
    let (r, w) = fds.context("Felix's fds were not claimed at start")?;
    Ok(transport::felix_streams(r, w)?)
}
