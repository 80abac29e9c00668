//! `sluice serve`: load settings, open the data directory, serve Kafka
//! clients until SIGINT or SIGTERM, then fsync and exit.

use std::sync::Arc;

use anyhow::{Context, Result};
use sluice_broker::{server, Broker, BrokerConfig};
use tracing::info;

use crate::ServeArgs;

pub fn run(args: ServeArgs) -> Result<()> {
    let mut config = BrokerConfig::load(args.config.as_deref())?;
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(advertised) = args.advertised_listener {
        config.advertised_listener = Some(advertised);
    }
    config.validate()?;
    if args.print_config {
        print!("{}", config.to_toml());
        return Ok(());
    }
    init_logging();
    server::raise_open_files_limit(&config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sluice")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(mut config: BrokerConfig) -> Result<()> {
    let listener = server::bind(&mut config)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let broker = Arc::new(Broker::open(config).context("cannot open the data directory")?);
    server::log_ready(&broker);
    broker.spawn_background_tasks();
    let serving = tokio::spawn(server::serve(Arc::clone(&broker), listener));
    shutdown_signal().await;
    info!("shutting down");
    serving.abort();
    broker.shut_down().await;
    info!("data synced; bye");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
