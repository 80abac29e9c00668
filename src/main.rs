//! `sluice`: the broker (`serve`, the default) and command-line tools that
//! talk to any Kafka-compatible broker (`topic`, `produce`, `consume`,
//! `group`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod admin_call;
mod group_tools;
mod serve;
mod tools;
mod txn_tools;

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "A message broker that speaks the Apache Kafka protocol"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker (the default when no command is given).
    Serve(ServeArgs),
    /// Create, list, describe or delete topics.
    #[command(subcommand)]
    Topic(tools::TopicCommand),
    /// Send lines from standard input as records (`key<TAB>value` for keyed records).
    Produce(tools::ProduceArgs),
    /// Print records of a topic to standard output.
    Consume(tools::ConsumeArgs),
    /// List, describe (members, lag), reset offsets of, or delete consumer groups.
    #[command(subcommand)]
    Group(group_tools::GroupCommand),
    /// List transactions; set, list or remove transaction checkers (Sluice only).
    #[command(subcommand)]
    Txn(txn_tools::TxnCommand),
}

#[derive(clap::Args, Default)]
pub struct ServeArgs {
    /// Directory for topic metadata and partition logs [default: ./data]
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address to listen on, HOST:PORT [default: 127.0.0.1:9092]
    #[arg(long)]
    listen: Option<String>,
    /// HOST:PORT that clients are told to connect to [default: the listen address]
    #[arg(long)]
    advertised_listener: Option<String>,
    /// TOML config file. Precedence: defaults < this file < SLUICE_* variables < flags
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit
    #[arg(long)]
    print_config: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => serve::run(args),
        Command::Topic(command) => tools::run_topic(command),
        Command::Produce(args) => tools::run_produce(args),
        Command::Consume(args) => tools::run_consume(args),
        Command::Group(command) => group_tools::run(command),
        Command::Txn(command) => txn_tools::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: {e:#}");
            ExitCode::FAILURE
        }
    }
}
