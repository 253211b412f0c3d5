//! HDR histograms of microseconds: how bench and report make them and record
//! into them. Only construction and recording; reading figures back out is
//! [`super::Latency::from_hist`].

use std::time::Duration;

use hdrhistogram::{Counter, Histogram};

/// Significant figures of the overall histograms (HdrHistogram's usual 3:
/// every figure exact to 0.1 %).
pub(crate) const SIGFIG: u8 = 3;
/// The most significant figures HdrHistogram accepts.
const MAX_SIGFIG: u8 = 5;

/// An empty, auto-resizing histogram with `sigfig` significant figures
/// (clamped to what HdrHistogram accepts).
pub(crate) fn new_hist<T: Counter>(sigfig: u8) -> Histogram<T> {
    match Histogram::new(sigfig.min(MAX_SIGFIG)) {
        Ok(h) => h,
        // The constructor fails only for more than five significant figures,
        // which the clamp rules out.
        Err(e) => unreachable!("{sigfig} significant figures were refused: {e:?}"),
    }
}

/// Records a sample, growing the histogram as needed: `saturating_record`
/// would clamp to the current (auto-resizing) range instead of growing it.
pub(crate) fn record<T: Counter>(h: &mut Histogram<T>, v: u64) {
    if h.record(v).is_err() {
        h.saturating_record(v);
    }
}

/// A duration in whole microseconds, the histograms' unit, saturating.
pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_grows_past_the_initial_range() {
        let mut h = new_hist::<u32>(2);
        record(&mut h, 1);
        record(&mut h, 3_600_000_000);
        assert_eq!(h.len(), 2);
        // Two significant figures: the maximum is within 1 %.
        let max = h.max() as f64;
        assert!((max / 3_600_000_000.0 - 1.0).abs() < 0.01, "{max}");
    }

    #[test]
    fn too_many_significant_figures_are_clamped() {
        let h = new_hist::<u64>(9);
        assert_eq!(h.sigfig(), MAX_SIGFIG);
    }

    #[test]
    fn micros_saturate() {
        assert_eq!(micros(Duration::from_micros(250)), 250);
        assert_eq!(micros(Duration::MAX), u64::MAX);
    }
}
