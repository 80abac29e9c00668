//! Latency samples in microseconds and their percentiles; throughput; the
//! report lines built from them.

use std::time::Duration;

/// Latency samples in microseconds. Sorting a few million `u32`s is cheap
/// next to a benchmark run, and exact percentiles need no histogram crate.
#[derive(Default, Clone)]
pub struct Latencies {
    samples: Vec<u32>,
}

impl Latencies {
    pub fn record(&mut self, latency: Duration) {
        self.samples
            .push(latency.as_micros().min(u128::from(u32::MAX)) as u32);
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// p50, p99, p99.9 and max, in microseconds; `None` without samples.
    pub fn summary(&mut self) -> Option<Percentiles> {
        if self.samples.is_empty() {
            return None;
        }
        self.samples.sort_unstable();
        let at = |q: f64| {
            let rank = ((self.samples.len() as f64) * q).ceil() as usize;
            self.samples[rank.clamp(1, self.samples.len()) - 1]
        };
        Some(Percentiles {
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            max: self.samples[self.samples.len() - 1],
        })
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Percentiles {
    pub p50: u32,
    pub p99: u32,
    pub p999: u32,
    pub max: u32,
}

impl Percentiles {
    pub fn json(&self) -> String {
        format!(
            "{{\"p50_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{}}}",
            self.p50, self.p99, self.p999, self.max
        )
    }
}

/// Records and bytes moved in a time.
pub struct Throughput {
    pub records: u64,
    pub bytes: u64,
    pub elapsed: Duration,
}

impl Throughput {
    pub fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1_000_000.0 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn json(&self) -> String {
        format!(
            "\"records\":{},\"bytes\":{},\"seconds\":{:.3},\"records_per_sec\":{:.0},\"mb_per_sec\":{:.2}",
            self.records,
            self.bytes,
            self.elapsed.as_secs_f64(),
            self.records_per_sec(),
            self.mb_per_sec()
        )
    }
}

// The report lines every subcommand prints, the Kafka and the NATS ones alike.

fn latency_line(percentiles: Option<Percentiles>) -> String {
    percentiles.map_or("n/a".to_string(), |p| {
        format!(
            "p50 {}us p99 {}us p99.9 {}us max {}us",
            p.p50, p.p99, p.p999, p.max
        )
    })
}

pub fn percentiles_json(percentiles: Option<Percentiles>) -> String {
    percentiles.map_or("null".to_string(), |p| p.json())
}

/// Prints the produce summary on stderr; returns the JSON fields of the
/// report. `latencies` holds one sample per acknowledged record.
pub fn produce_report(
    sent: u64,
    failures: u64,
    latencies: &mut Latencies,
    record_size: usize,
    elapsed: Duration,
) -> String {
    let acked = latencies.len() as u64;
    let throughput = Throughput {
        records: acked,
        bytes: acked * record_size as u64,
        elapsed,
    };
    let percentiles = latencies.summary();
    eprintln!(
        "produce: {sent} sent, {acked} acked, {failures} failed in {:.2}s: {:.0} records/s, {:.1} MB/s; ack latency {}",
        elapsed.as_secs_f64(),
        throughput.records_per_sec(),
        throughput.mb_per_sec(),
        latency_line(percentiles)
    );
    format!(
        "{},\"sent\":{sent},\"failed\":{failures},\"ack_latency\":{}",
        throughput.json(),
        percentiles_json(percentiles)
    )
}

/// Prints the consume report: a summary on stderr, the JSON line on stdout.
pub fn consume_report(throughput: &Throughput) {
    eprintln!(
        "consume: {} records in {:.2}s: {:.0} records/s, {:.1} MB/s",
        throughput.records,
        throughput.elapsed.as_secs_f64(),
        throughput.records_per_sec(),
        throughput.mb_per_sec()
    );
    println!("{{\"kind\":\"consume\",{}}}", throughput.json());
}

/// Prints the end-to-end report: the latencies of the records received and
/// the JSON fields [`produce_report`] returned for the producing side.
pub fn end_to_end_report(latencies: &mut Latencies, produce_report: &str) {
    let received = latencies.len();
    let percentiles = latencies.summary();
    eprintln!(
        "end-to-end: {received} records received; latency {}",
        latency_line(percentiles)
    );
    println!(
        "{{\"kind\":\"end_to_end\",\"received\":{received},\"e2e_latency\":{},\"produce\":{{{produce_report}}}}}",
        percentiles_json(percentiles)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut latencies = Latencies::default();
        for us in 1..=1000u64 {
            latencies.record(Duration::from_micros(us));
        }
        let p = latencies.summary().expect("samples");
        assert_eq!((p.p50, p.p99, p.p999, p.max), (500, 990, 999, 1000));
    }
}
