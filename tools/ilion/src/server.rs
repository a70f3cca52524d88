//! `ilion server`: assembles a node from its configuration and runs it until
//! SIGTERM or SIGINT.
//!
//! Start-up order: configuration is validated and the machine checked (data
//! directories writable, client port free) before anything is opened, so a
//! bad setting stops the node with a message naming the key. Shutdown stops
//! accepting clients, lets open connections go, and returns.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::cli::ServerArgs;
use crate::config::{Config, ConfigError, RawConfig};

/// Longest time a connection task may take to notice shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Most client connections open at once; past it new connections are closed.
const CONNECTIONS_MAX: usize = 1024;

/// Merges the configuration layers: file, then environment, then flags.
pub fn load_config(
    args: &ServerArgs,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let file = match &args.config {
        Some(path) => RawConfig::from_file(path)?,
        None => RawConfig::default(),
    };
    let env = RawConfig::from_env(env)?;
    Config::resolve(file.overridden_by(env).overridden_by(args.as_layer()))
}

/// Runs a node until a shutdown signal. Returns after a clean shutdown.
pub async fn run(config: Config) -> anyhow::Result<()> {
    tracing::info!(version = env!("CARGO_PKG_VERSION"), %config, "starting Ilion node");
    config.check_environment()?;
    let addr = config.native_address();
    let listener =
        TcpListener::bind(addr)
            .await
            .map_err(|source| ConfigError::PortUnavailable {
                key: "native_transport_port",
                addr,
                source,
            })?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    tracing::info!(%addr, "listening for CQL clients");
    let accept = tokio::spawn(accept_loop(listener, shutdown_rx));
    let signal = wait_for_shutdown_signal().await?;
    tracing::info!(signal, "shutting down");
    let _ = shutdown_tx.send(true);
    match tokio::time::timeout(SHUTDOWN_GRACE, accept).await {
        Ok(joined) => joined.context("accept loop failed")?,
        Err(_) => tracing::warn!("connections did not close in time; leaving them"),
    }
    tracing::info!("shutdown complete");
    Ok(())
}

async fn wait_for_shutdown_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

async fn accept_loop(listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(CONNECTIONS_MAX));
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        tracing::warn!(%peer, "too many client connections; closing the new one");
                        continue;
                    };
                    tokio::spawn(async move {
                        answer_not_built(stream, peer).await;
                        drop(permit);
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// Until the CQL frontend is built (issue 4), every request gets a CQL ERROR
/// frame that says so, and the connection is closed.
async fn answer_not_built(mut stream: TcpStream, peer: SocketAddr) {
    let mut header = [0u8; 9];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut header)).await;
    if !matches!(read, Ok(Ok(_))) {
        return;
    }
    let [version, _flags, stream_hi, stream_lo, ..] = header;
    let version = match version & 0x7f {
        v @ 3..=5 => v,
        _ => 4,
    };
    let message =
        b"not yet supported: this Ilion build accepts connections but does not execute CQL yet";
    let mut body = Vec::with_capacity(6 + message.len());
    body.extend_from_slice(&0u32.to_be_bytes()); // ServerError
    body.extend_from_slice(&(message.len() as u16).to_be_bytes());
    body.extend_from_slice(message);
    let mut frame = vec![0x80 | version, 0, stream_hi, stream_lo, 0x00];
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    if let Err(error) = stream.write_all(&frame).await {
        tracing::debug!(%peer, %error, "could not answer client");
    }
}
