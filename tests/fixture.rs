//! The replay fixture against the answer PostgreSQL computed for it, across interleavings,
//! batch sizes, worker counts and forced serialization: every run must export the same bytes.

use gridflow::sources::csv_replay::Interleave;

use crate::common::{assert_same_tables, fixture_dir, replay, run_and_export_with, scratch_dir};

const FIVE_SECONDS: i64 = 5_000;

fn check(name: &str, batch_rows: usize, interleave: Interleave, workers: usize, serialize: bool) {
    let out = scratch_dir(name);
    let source = replay(&fixture_dir().join("input"), batch_rows, interleave);
    // Seal the input frontier at a batch size unrelated to the replay's: results must not care.
    run_and_export_with(source, workers, serialize, FIVE_SECONDS, 1_733, &out);
    assert_same_tables(&fixture_dir().join("expected"), &out);
}

#[test]
fn fixture_alternating_batches_one_worker() {
    check("fixture_alt_1", 1000, Interleave::Alternate, 1, false);
}

#[test]
fn fixture_users_first_two_workers() {
    check(
        "fixture_users_first_2",
        700,
        Interleave::UsersFirst,
        2,
        false,
    );
}

#[test]
fn fixture_consumption_first_every_user_late_two_workers_serialized() {
    check(
        "fixture_consumption_first_2z",
        500,
        Interleave::ConsumptionFirst,
        2,
        true,
    );
}

#[test]
fn fixture_small_batches_four_workers() {
    check("fixture_alt_4", 97, Interleave::Alternate, 4, false);
}
