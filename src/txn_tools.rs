//! `sluice txn …`: the transactions the coordinator knows, with how long
//! each has been open and how often it was checked, and the check-back
//! endpoints (`checker set|list|remove`). Sluice only: these use its admin
//! API.

use anyhow::Result;
use clap::Subcommand;
use sluice_broker::admin::{AdminRequest, AdminResponse, CheckerView};
use sluice_client::Client;

use crate::admin_call::call_sluice;
use crate::tools::{runtime, Connect};

#[derive(Subcommand)]
pub enum TxnCommand {
    /// Transactional ids: state, how long the open transaction has been
    /// open, checks made, and the checker that decides it.
    List {
        #[command(flatten)]
        connect: Connect,
    },
    /// Check-back endpoints: set, list, remove (kept across restarts).
    #[command(subcommand)]
    Checker(CheckerCommand),
}

#[derive(Subcommand)]
pub enum CheckerCommand {
    /// Sets the checker of transactional ids starting with PREFIX.
    Set {
        #[arg(long)]
        prefix: String,
        /// http://HOST:PORT/PATH that answers the broker's POSTed checks
        #[arg(long)]
        url: String,
        #[command(flatten)]
        connect: Connect,
    },
    List {
        #[command(flatten)]
        connect: Connect,
    },
    /// Removes a checker set with `set`.
    Remove {
        #[arg(long)]
        prefix: String,
        #[command(flatten)]
        connect: Connect,
    },
}

pub fn run(command: TxnCommand) -> Result<()> {
    runtime()?.block_on(txn(command))
}

async fn txn(command: TxnCommand) -> Result<()> {
    let (connect, request) = match command {
        TxnCommand::List { connect } => (connect, AdminRequest::TxnList),
        TxnCommand::Checker(CheckerCommand::Set {
            prefix,
            url,
            connect,
        }) => (connect, AdminRequest::TxnCheckerSet { prefix, url }),
        TxnCommand::Checker(CheckerCommand::List { connect }) => {
            (connect, AdminRequest::TxnCheckerList)
        }
        TxnCommand::Checker(CheckerCommand::Remove { prefix, connect }) => {
            (connect, AdminRequest::TxnCheckerRemove { prefix })
        }
    };
    let mut client = Client::connect(&connect.bootstrap_server).await?;
    match call_sluice(&mut client, None, &request).await? {
        AdminResponse::Transactions {
            transactions,
            checks,
            commits,
            rollbacks,
            unknowns,
            defaulted,
        } => {
            println!("TRANSACTIONAL ID\tPRODUCER\tEPOCH\tSTATE\tOPEN\tCHECKS\tCHECKER");
            for t in transactions {
                let open = if t.open_ms < 0 {
                    "-".to_string()
                } else {
                    format!("{:.1}s", t.open_ms as f64 / 1000.0)
                };
                println!(
                    "{}\t{}\t{}\t{}\t{open}\t{}\t{}",
                    t.transactional_id,
                    t.producer_id,
                    t.producer_epoch,
                    t.state,
                    t.checks,
                    t.checker.as_deref().unwrap_or("-")
                );
            }
            println!(
                "checks {checks}: commit {commits}, rollback {rollbacks}, unknown {unknowns}; \
                 decided by transaction_check_default {defaulted}"
            );
        }
        AdminResponse::Checkers { checkers } => print_checkers(&checkers),
        other => anyhow::bail!("unexpected answer {other:?}"),
    }
    Ok(())
}

fn print_checkers(checkers: &[CheckerView]) {
    println!("PREFIX\tURL\tSET BY");
    for c in checkers {
        println!("{}\t{}\t{}", c.prefix, c.url, c.source);
    }
}
