//! Latency figures out of an HDR histogram, in microseconds: one shape for
//! `chatmon bench` rows and `chatmon report`, so their JSON reads the same.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latency figures, in microseconds (all zero for no samples).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latency {
    pub count: u64,
    pub min_us: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

impl Latency {
    pub fn from_hist<T: hdrhistogram::Counter>(h: &Histogram<T>) -> Latency {
        let q = |p| {
            if h.is_empty() {
                0
            } else {
                h.value_at_quantile(p)
            }
        };
        Latency {
            count: h.len(),
            min_us: if h.is_empty() { 0 } else { h.min() },
            p50_us: q(0.5),
            p90_us: q(0.9),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: if h.is_empty() { 0 } else { h.max() },
            mean_us: if h.is_empty() { 0.0 } else { h.mean() },
        }
    }
}
