//! The process exit codes every failure maps to (`docs/durability.md`): a contract with the
//! scripts and supervisors that run gridflow. Each error type decides its code from what it is
//! (`exit_code()` on the error types of the state dir, the sinks and the runtime), never from its
//! text.

/// Any other failure.
pub const FAILED: u8 = 1;
/// `gridflow verify`: the tables differ from an oracle's (the report is on stdout). Not a
/// failure of the command, so no `error:` line.
pub const DIFFERENCE: u8 = 1;
/// Bad options (clap's code, kept for every option error).
pub const BAD_OPTIONS: u8 = 2;
/// The sink or the state dir is held by another running job.
pub const HELD: u8 = 3;
/// The sink failed after its retries, or was taken over: the job stopped.
pub const SINK_FAILED: u8 = 4;
/// The state dir is corrupt, or cannot be read or written.
pub const STATE_FAILED: u8 = 5;
/// The state dir or the sink belongs to another job (other options, other rows).
pub const OTHER_JOB: u8 = 6;
/// `gridflow verify` could not verify: the input cannot be read, the run or PostgreSQL failed
/// (as opposed to a difference, which is 1).
pub const CANNOT_VERIFY: u8 = 7;
