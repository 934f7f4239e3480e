//! Which clock paces the input: the wall clock (real time) or a simulated one (as fast as the
//! engine goes).

/// Which clock paces the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Clock {
    /// Real time: a tick goes in when the wall clock reaches its end.
    Wall,
    /// As fast as the engine goes.
    Simulated,
}
