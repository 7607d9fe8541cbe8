//! A small Prometheus registry: requests by route and status, latency
//! histograms by route, ingest counts. Rendered in the text format at
//! `/metrics`. Labels are bounded: routes are the registered patterns (or
//! `unmatched`), never raw paths, and no label names a tenant or subject.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Renders series that live elsewhere (the database pool's), appended to
/// `/metrics` in the same text format.
pub type Source = Box<dyn Fn() -> String + Send + Sync>;

#[derive(Default)]
struct Inner {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    messages_accepted: AtomicU64,
    messages_invalid: AtomicU64,
    messages_suppressed: AtomicU64,
    events_inserted: AtomicU64,
    events_duplicate: AtomicU64,
    sources: Mutex<Vec<Source>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// The process's metrics; clones share them.
#[derive(Debug, Clone, Default)]
pub struct Metrics(Arc<Inner>);

/// What one ingest request did, for the counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct IngestCounts {
    pub accepted: u64,
    pub invalid: u64,
    pub suppressed: u64,
    pub inserted: u64,
    pub duplicates: u64,
}

impl Metrics {
    /// Counts a finished request.
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        *self
            .0
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default() += 1;
        let mut latency = self
            .0
            .latency
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let histogram = latency.entry(route.to_owned()).or_default();
        for (count, bound) in histogram.counts.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *count += 1;
            }
        }
        histogram.count += 1;
        histogram.sum += seconds;
    }

    /// Adds series rendered by `source` to every `/metrics` answer.
    pub fn add_source(&self, source: Source) {
        self.0
            .sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(source);
    }

    pub fn ingest(&self, counts: IngestCounts) {
        let i = &self.0;
        i.messages_accepted
            .fetch_add(counts.accepted, Ordering::Relaxed);
        i.messages_invalid
            .fetch_add(counts.invalid, Ordering::Relaxed);
        i.messages_suppressed
            .fetch_add(counts.suppressed, Ordering::Relaxed);
        i.events_inserted
            .fetch_add(counts.inserted, Ordering::Relaxed);
        i.events_duplicate
            .fetch_add(counts.duplicates, Ordering::Relaxed);
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP tessera_http_requests_total HTTP requests by method, route and status.\n\
             # TYPE tessera_http_requests_total counter\n",
        );
        for ((method, route, status), n) in self
            .0
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            let _ = writeln!(
                out,
                "tessera_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        out.push_str(
            "# HELP tessera_http_request_duration_seconds Time to answer a request, by route.\n\
             # TYPE tessera_http_request_duration_seconds histogram\n",
        );
        for (route, h) in self
            .0
            .latency
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            let route = escape(route);
            for (count, bound) in h.counts.iter().zip(BUCKETS) {
                let _ = writeln!(
                    out,
                    "tessera_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "tessera_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}\n\
                 tessera_http_request_duration_seconds_sum{{route=\"{route}\"}} {}\n\
                 tessera_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count, h.sum, h.count
            );
        }
        let i = &self.0;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = write!(
            out,
            "# HELP tessera_ingest_messages_total Ingest messages by outcome.\n\
             # TYPE tessera_ingest_messages_total counter\n\
             tessera_ingest_messages_total{{outcome=\"accepted\"}} {}\n\
             tessera_ingest_messages_total{{outcome=\"invalid\"}} {}\n\
             tessera_ingest_messages_total{{outcome=\"suppressed\"}} {}\n\
             # HELP tessera_ingest_events_total Ingested events: stored, or duplicates of stored ones.\n\
             # TYPE tessera_ingest_events_total counter\n\
             tessera_ingest_events_total{{outcome=\"inserted\"}} {}\n\
             tessera_ingest_events_total{{outcome=\"duplicate\"}} {}\n",
            load(&i.messages_accepted),
            load(&i.messages_invalid),
            load(&i.messages_suppressed),
            load(&i.events_inserted),
            load(&i.events_duplicate),
        );
        for source in i
            .sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            out.push_str(&source());
        }
        out
    }
}

pub(crate) fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::Metrics;

    #[test]
    fn added_sources_are_rendered_after_the_own_series() {
        let metrics = Metrics::default();
        metrics.add_source(Box::new(|| "# TYPE extra gauge\nextra 7\n".to_owned()));
        let text = metrics.render();
        assert!(text.ends_with("# TYPE extra gauge\nextra 7\n"), "{text}");
        assert!(text.contains("tessera_ingest_events_total"), "{text}");
    }
}
