//! Latency figures out of an HDR histogram, in microseconds: one shape for
//! `chatmon bench` rows and `chatmon report`, so their JSON reads the same.
//!
//! The helpers both commands share live here too, so there is one copy of
//! each: `hist` (histogram construction and recording) and `plot` (the
//! SVG figure). `live` keeps the chat client's sliding-window figures
//! (probes and messages, for the TUI's panel and the `Probe` log lines). Neither knows about clients, logs or servers.

pub(crate) mod hist;
pub(crate) mod live;
pub(crate) mod plot;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Microseconds in a millisecond, for the tables (which show milliseconds).
const US_PER_MS: f64 = 1000.0;

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

/// A figure in microseconds as milliseconds with three decimals: the unit
/// of every latency column in the bench and report tables.
pub(crate) fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / US_PER_MS)
}

/// A figure in microseconds as (fractional) milliseconds, for plot axes.
pub(crate) fn ms_f64(us: f64) -> f64 {
    us / US_PER_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_histogram_gives_zeros() {
        let l = Latency::from_hist(&hist::new_hist::<u64>(hist::SIGFIG));
        assert_eq!(l.count, 0);
        assert_eq!((l.min_us, l.p50_us, l.max_us), (0, 0, 0));
        assert_eq!(l.mean_us, 0.0);
    }

    #[test]
    fn milliseconds_have_three_decimals() {
        assert_eq!(ms(0), "0.000");
        assert_eq!(ms(1), "0.001");
        assert_eq!(ms(12_503), "12.503");
        assert_eq!(ms_f64(1500.0), 1.5);
    }
}
