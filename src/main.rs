//! The `sluice` command.

use std::io::IsTerminal;

use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

use sluice::config::{BrokerConfig, ServeArgs};
use sluice::metrics::log_json::JsonLines;
use sluice::metrics::log_sink::{self, DroppingStderr};

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "A thread-per-core message broker that speaks the Kafka protocol, and the tools to run it",
    after_help = sluice::cli::error::EXIT_CODES_HELP
)]
struct Cli {
    /// Log lines on stderr: text (for people) or json (one object a line, for log shippers).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "SLUICE_LOG_FORMAT", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

// Parsed once at start-up and consumed at once: the size of the largest variant
// (the serve flags) costs nothing, and boxing it would only obscure the clap derive.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the broker (defaults: 127.0.0.1:9092, data in ./data, console and /metrics on
    /// 127.0.0.1:9644). Logs go to stderr; set RUST_LOG to change the level.
    Serve(ServeArgs),
    /// Load generator: producers and consumers against a Kafka broker (or Redis Streams) at
    /// a target rate, with HDR percentiles of produce-ack and end-to-end latency.
    Bench(sluice::bench::BenchArgs),
    #[command(flatten)]
    Client(sluice::cli::Command),
}

fn init_logs(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    // Never `std::io::stderr` itself: a failed write would reach tracing's `eprintln!`
    // fallback, which panics (metrics::log_sink).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(DroppingStderr)
        .log_internal_errors(false);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.event_format(JsonLines).init(),
    }
}

fn main() {
    let cli = Cli::parse();
    let log_format = cli.log_format;
    // The operator commands print their own results; only warnings of the client
    // library reach the log there.
    let level = match cli.command {
        Command::Client(_) => "warn",
        _ => "info",
    };
    init_logs(log_format, level);
    let result = match cli.command {
        Command::Serve(args) => BrokerConfig::resolve(&args).and_then(sluice::server::serve),
        Command::Bench(args) => sluice::bench::run(args),
        Command::Client(cmd) => std::process::exit(sluice::cli::run(cmd)),
    };
    if let Err(e) = result {
        match log_format {
            LogFormat::Text => log_sink::print_line(&format!("sluice: {e}")),
            LogFormat::Json => tracing::error!("{e}"),
        }
        std::process::exit(1);
    }
}
