//! Late-data accounting (SPEC §4): consumption rows behind the source's 5-second watermark.
//!
//! Flink drops such rows; gridflow processes them exactly and only counts them. The watermark a
//! row is held against is the largest `consumption_date` of all rows at strictly earlier logical
//! times, minus the allowed delay — a definition that depends on the input and its times only,
//! never on how rows are spread over workers. The dates go to worker 0, which walks the
//! completed times in order.

use std::collections::BTreeMap;

use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;

use crate::model::rows::Millis;
use crate::model::Time;
use crate::operators::Table;

/// The source's watermark delay: `WATERMARK FOR consumption_date AS consumption_date - INTERVAL '5' SECOND`.
pub const WATERMARK_DELAY: Millis = 5_000;

/// Counts the late rows among the consumption rows arriving in `dates` (the
/// `consumption_date` of each new or changed `ods_power_consumption` row): worker 0 tells
/// `on_late` how many of each completed time's rows were late.
pub fn count_late_rows(dates: Table<'_, Millis>, on_late: impl Fn(u64) + 'static) {
    let mut dates_by_time: BTreeMap<Time, Vec<Millis>> = BTreeMap::new();
    let mut max_date: Option<Millis> = None;
    let to_worker_zero = Exchange::new(|_: &(Millis, Time, isize)| 0);
    dates.inner.sink(
        to_worker_zero,
        "late.watermark",
        move |(input, frontier)| {
            input.for_each(|_, data| {
                for (date, time, diff) in data.drain(..) {
                    // Retractions are rows leaving (replaced or deleted), not rows arriving.
                    if diff > 0 {
                        dates_by_time.entry(time).or_default().push(date);
                    }
                }
            });
            while let Some(entry) = dates_by_time.first_entry() {
                if frontier.less_equal(entry.key()) {
                    break;
                }
                let dates = entry.remove();
                if let Some(max) = max_date {
                    let watermark = max - WATERMARK_DELAY;
                    let late = dates.iter().filter(|&&date| date < watermark).count();
                    on_late(late as u64);
                }
                max_date = dates.iter().copied().chain(max_date).max();
            }
        },
    );
}
