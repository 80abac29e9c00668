//! `sluice group …`: see a group's members, committed offsets and lag, move
//! its offsets, delete it. Works against any Kafka-compatible broker; from
//! Sluice, `describe` also shows each partition's consumption rate (the
//! coordinator sees every commit), how long its backlog will take to drain
//! at that rate, and names a member that consumes far slower than the rest.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use sluice_broker::admin::{AdminRequest, AdminResponse, PartitionRateView};
use sluice_client::{Client, EARLIEST, LATEST};

use crate::tools::{runtime, Connect};

#[derive(Subcommand)]
pub enum GroupCommand {
    /// List groups with their state.
    List {
        #[command(flatten)]
        connect: Connect,
    },
    /// Show a group's members, and per partition its committed offset, end
    /// offset, lag, and (from Sluice) consumption rate and drain time.
    Describe {
        group: String,
        #[command(flatten)]
        connect: Connect,
    },
    /// Move a group's committed offsets (the group must have no members).
    ResetOffsets(ResetArgs),
    /// Delete a group with no members, and its committed offsets.
    Delete {
        group: String,
        #[command(flatten)]
        connect: Connect,
    },
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(
    ["to_earliest", "to_latest", "to_offset", "shift_by", "to_datetime"]
)))]
pub struct ResetArgs {
    group: String,
    /// Topic whose offsets to move
    #[arg(long)]
    topic: String,
    /// Only this partition (default: all of the topic's)
    #[arg(long)]
    partition: Option<i32>,
    /// To each partition's earliest offset
    #[arg(long)]
    to_earliest: bool,
    /// To each partition's end: skip the backlog
    #[arg(long)]
    to_latest: bool,
    /// To this offset (clamped to what the partition holds)
    #[arg(long)]
    to_offset: Option<i64>,
    /// By this many records from the committed offset (negative: back)
    #[arg(long, allow_hyphen_values = true)]
    shift_by: Option<i64>,
    /// To the first record at or after this time: milliseconds since the
    /// epoch, or YYYY-MM-DDTHH:MM:SS[.mmm]Z
    #[arg(long)]
    to_datetime: Option<String>,
    /// Show the new offsets without committing them
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    connect: Connect,
}

pub fn run(command: GroupCommand) -> Result<()> {
    runtime()?.block_on(group(command))
}

async fn group(command: GroupCommand) -> Result<()> {
    match command {
        GroupCommand::List { connect } => {
            let mut client = Client::connect(&connect.bootstrap_server).await?;
            // TYPE: the group's protocol (classic or consumer, KIP-848);
            // PROTOCOL TYPE: what its members embed ("consumer" for consumers).
            println!("GROUP\tSTATE\tTYPE\tPROTOCOL TYPE");
            for g in client.list_groups().await? {
                println!(
                    "{}\t{}\t{}\t{}",
                    g.group_id, g.state, g.group_type, g.protocol_type
                );
            }
        }
        GroupCommand::Describe { group, connect } => {
            let mut client = Client::connect(&connect.bootstrap_server).await?;
            describe(&mut client, &group).await?;
        }
        GroupCommand::ResetOffsets(args) => reset(args).await?,
        GroupCommand::Delete { group, connect } => {
            let mut client = Client::connect(&connect.bootstrap_server).await?;
            client.delete_group(&group).await?;
            println!("deleted group {group}");
        }
    }
    Ok(())
}

async fn describe(client: &mut Client, group: &str) -> Result<()> {
    let info = client.describe_group(group).await?;
    let committed = client.committed_offsets(group).await?;
    let rates = group_rates(client, group).await?;
    println!(
        "group {}  state {}  protocol {}/{}  members {}",
        info.group_id,
        info.state,
        info.protocol_type,
        info.protocol,
        info.members.len()
    );
    let mut owner: BTreeMap<(String, i32), String> = BTreeMap::new();
    if !info.members.is_empty() {
        println!("MEMBER\tCLIENT\tHOST\tPARTITIONS");
        for m in &info.members {
            let parts: Vec<String> = m.assigned.iter().map(|(t, p)| format!("{t}-{p}")).collect();
            let id = match &m.instance_id {
                Some(instance) => format!("{} ({instance})", m.member_id),
                None => m.member_id.clone(),
            };
            println!("{id}\t{}\t{}\t{}", m.client_id, m.host, parts.join(","));
            for tp in &m.assigned {
                owner.insert(tp.clone(), m.member_id.clone());
            }
        }
    }
    let partitions: BTreeSet<(String, i32)> =
        committed.keys().chain(owner.keys()).cloned().collect();
    println!("TOPIC\tPARTITION\tCOMMITTED\tEND\tLAG\tMEMBER\tRATE/S\tDRAIN");
    let mut total_lag = 0i64;
    let mut backlog = Vec::new();
    for (topic, partition) in partitions {
        let key = (topic.clone(), partition);
        let end = client.list_offset(&topic, partition, LATEST).await?;
        let current = committed.get(&key).copied();
        let lag = current.map(|c| (end - c).max(0));
        total_lag += lag.unwrap_or(0);
        let rate = rates.as_ref().and_then(|r| r.get(&key));
        let member = owner
            .get(&key)
            .cloned()
            .or_else(|| rate.map(|r| r.member_id.clone()).filter(|m| !m.is_empty()));
        println!(
            "{topic}\t{partition}\t{}\t{end}\t{}\t{}\t{}\t{}",
            current.map_or("-".to_string(), |c| c.to_string()),
            lag.map_or("-".to_string(), |l| l.to_string()),
            member.as_deref().unwrap_or("-"),
            rate.map_or("-".to_string(), |r| format!("{:.1}", r.per_second)),
            drain_time(lag, rate.map(|r| r.per_second)),
        );
        backlog.push(PartitionBacklog {
            member,
            lag: lag.unwrap_or(0),
            rate: rate.map(|r| r.per_second),
        });
    }
    let slowest_drain = backlog
        .iter()
        .map(|b| drain_seconds(b.lag, b.rate))
        .try_fold(0.0f64, |acc, d| d.map(|d| acc.max(d)));
    match (&rates, slowest_drain) {
        (None, _) => println!("total lag {total_lag}"),
        (Some(_), Some(secs)) => println!(
            "total lag {total_lag}, drained in {} at the current rates",
            format_duration(secs)
        ),
        (Some(_), None) => println!(
            "total lag {total_lag}; some partitions are not being consumed, so it will not drain"
        ),
    }
    if let Some(slow) = slow_member(&backlog) {
        println!(
            "slow member: {} consumes {:.1} records/s per partition; the group's median is {:.1}",
            slow.member, slow.rate, slow.median
        );
    }
    Ok(())
}

/// Each partition's consumption rate from Sluice's admin API; None from a
/// broker that is not Sluice.
async fn group_rates(
    client: &mut Client,
    group: &str,
) -> Result<Option<BTreeMap<(String, i32), PartitionRateView>>> {
    let request = AdminRequest::GroupRates {
        group: group.to_string(),
    };
    match crate::admin_call::call(client, Some(group), &request).await? {
        None => Ok(None),
        Some(AdminResponse::GroupRates { partitions }) => Ok(Some(
            partitions
                .into_iter()
                .map(|p| ((p.topic.clone(), p.partition), p))
                .collect(),
        )),
        Some(other) => bail!("unexpected admin answer {other:?}"),
    }
}

struct PartitionBacklog {
    member: Option<String>,
    lag: i64,
    rate: Option<f64>,
}

/// Seconds to drain `lag` at `rate`: 0 with no lag, None when nothing
/// moves (or the rate is unknown).
fn drain_seconds(lag: i64, rate: Option<f64>) -> Option<f64> {
    if lag == 0 {
        return Some(0.0);
    }
    rate.filter(|r| *r > 0.0).map(|r| lag as f64 / r)
}

fn drain_time(lag: Option<i64>, rate: Option<f64>) -> String {
    match (lag, rate) {
        (None, _) | (_, None) => "-".to_string(),
        (Some(lag), rate) => match drain_seconds(lag, rate) {
            Some(secs) => format_duration(secs),
            None => "stalled".to_string(),
        },
    }
}

fn format_duration(secs: f64) -> String {
    let secs = secs.ceil() as u64;
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60),
    }
}

struct SlowMember {
    member: String,
    rate: f64,
    median: f64,
}

/// A member is slow when, with a backlog, it consumes under a fifth of the
/// group's median rate per partition (the source document's 10 ms → 500 ms
/// per message is a fiftieth). Members without a backlog are keeping up,
/// whatever their rate.
fn slow_member(backlog: &[PartitionBacklog]) -> Option<SlowMember> {
    let mut rates: Vec<f64> = backlog.iter().filter_map(|b| b.rate).collect();
    if rates.len() < 2 {
        return None;
    }
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    let mut per_member: BTreeMap<&str, (f64, usize, i64)> = BTreeMap::new();
    for b in backlog {
        if let (Some(member), Some(rate)) = (&b.member, b.rate) {
            let entry = per_member.entry(member).or_default();
            entry.0 += rate;
            entry.1 += 1;
            entry.2 += b.lag;
        }
    }
    if per_member.len() < 2 {
        return None;
    }
    per_member
        .into_iter()
        .map(|(member, (sum, count, lag))| (member, sum / count as f64, lag))
        .filter(|(_, rate, lag)| *lag > 0 && *rate * 5.0 < median)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(member, rate, _)| SlowMember {
            member: member.to_string(),
            rate,
            median,
        })
}

async fn reset(args: ResetArgs) -> Result<()> {
    let mut client = Client::connect(&args.connect.bootstrap_server).await?;
    let state = match client.describe_group(&args.group).await {
        Ok(info) => info.state,
        Err(_) => "Dead".to_string(),
    };
    if !matches!(state.as_str(), "Empty" | "Dead") && !args.dry_run {
        bail!(
            "group '{}' is {state}: stop its members before moving its offsets",
            args.group
        );
    }
    let partitions: Vec<i32> = match args.partition {
        Some(p) => vec![p],
        None => client
            .describe_topic(&args.topic)
            .await?
            .partitions
            .iter()
            .map(|p| p.index)
            .collect(),
    };
    let committed = client.committed_offsets(&args.group).await?;
    let timestamp = args.to_datetime.as_deref().map(parse_time).transpose()?;
    let mut plan = Vec::new();
    println!("TOPIC\tPARTITION\tOLD\tNEW");
    for partition in partitions {
        let earliest = client.list_offset(&args.topic, partition, EARLIEST).await?;
        let latest = client.list_offset(&args.topic, partition, LATEST).await?;
        let old = committed.get(&(args.topic.clone(), partition)).copied();
        let new = if args.to_earliest {
            earliest
        } else if args.to_latest {
            latest
        } else if let Some(offset) = args.to_offset {
            offset
        } else if let Some(shift) = args.shift_by {
            old.unwrap_or(earliest).saturating_add(shift)
        } else if let Some(at) = timestamp {
            match client.list_offset(&args.topic, partition, at).await? {
                -1 => latest,
                offset => offset,
            }
        } else {
            bail!("no target given");
        };
        let new = new.clamp(earliest, latest);
        println!(
            "{}\t{partition}\t{}\t{new}",
            args.topic,
            old.map_or("-".to_string(), |o| o.to_string())
        );
        plan.push((args.topic.clone(), partition, new));
    }
    if args.dry_run {
        println!("dry run: nothing committed");
        return Ok(());
    }
    client.commit_offsets(&args.group, &plan).await?;
    println!(
        "committed {} offset(s) for group {}",
        plan.len(),
        args.group
    );
    Ok(())
}

/// Milliseconds since the epoch, or `YYYY-MM-DDTHH:MM:SS[.mmm]Z` (UTC).
fn parse_time(text: &str) -> Result<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let bad = || format!("'{text}' is neither milliseconds nor YYYY-MM-DDTHH:MM:SS[.mmm]Z");
    let text = text.strip_suffix('Z').with_context(bad)?;
    let (date, time) = text.split_once('T').with_context(bad)?;
    let d: Vec<i64> = date
        .split('-')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()
        .with_context(bad)?;
    let (hms, millis) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms
        .split(':')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()
        .with_context(bad)?;
    let millis: i64 = format!("{millis:0<3}")[..3]
        .parse()
        .ok()
        .with_context(bad)?;
    let [year, month, day] = <[i64; 3]>::try_from(d).ok().with_context(bad)?;
    let [hour, minute, second] = <[i64; 3]>::try_from(t).ok().with_context(bad)?;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        bail!(bad());
    }
    let days = days_from_civil(year, month, day);
    Ok(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_utc_milliseconds() {
        assert_eq!(parse_time("1700000000000").unwrap(), 1_700_000_000_000);
        assert_eq!(parse_time("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000
        );
        assert_eq!(
            parse_time("2023-11-14T22:13:20.5Z").unwrap(),
            1_700_000_000_500
        );
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("2023-13-01T00:00:00Z").is_err());
    }
}
