//! The `sluice` command.

use std::io::IsTerminal;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use sluice::config::{BrokerConfig, ServeArgs};
use sluice::metrics::log_sink::{self, DroppingStderr};

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "A thread-per-core message broker that speaks the Kafka protocol"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start-up and consumed at once: the size of the largest variant
// (the serve flags) costs nothing, and boxing it would only obscure the clap derive.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the broker (defaults: 127.0.0.1:9092, data in ./data). Logs go to stderr; set RUST_LOG to change the level.
    Serve(ServeArgs),
    /// Load generator: producers and consumers against a Kafka broker (or Redis Streams) at
    /// a target rate, with HDR percentiles of produce-ack and end-to-end latency.
    Bench(sluice::bench::BenchArgs),
    /// Move dead-letter records (KIP-1191 DLQ topic) back to their source topics: all of
    /// them, one group's, or an offset range; prints the counts.
    Redrive(sluice::cli::redrive::RedriveArgs),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        // Never `std::io::stderr` itself: a failed write would reach tracing's
        // `eprintln!` fallback, which panics (metrics::log_sink).
        .with_writer(DroppingStderr)
        .log_internal_errors(false)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => BrokerConfig::resolve(&args).and_then(sluice::server::serve),
        Command::Bench(args) => sluice::bench::run(args),
        Command::Redrive(args) => sluice::cli::redrive::run(args),
    };
    if let Err(e) = result {
        log_sink::print_line(&format!("sluice: {e}"));
        std::process::exit(1);
    }
}
