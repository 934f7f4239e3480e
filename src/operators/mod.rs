//! Operators: the differential and timely building blocks the warehouse is written with, beyond
//! differential's own — each for one job, each named where it is built so the dataflow graph,
//! the logs and the metrics speak of the same thing.
//!
//! May use: the model. Used by the warehouse (`dataflows/`) and the engine.

pub mod earliest;
pub mod late;
pub mod reduce;
pub mod retention;
pub mod upsert;

use differential_dataflow::operators::arrange::TraceAgent;
use differential_dataflow::trace::implementations::ValSpine;

use crate::model::Time;

/// A collection of the warehouse: rows of `D` at logical times, with multiplicities.
pub type Table<'scope, D> = differential_dataflow::VecCollection<'scope, Time, D, isize>;

/// An arrangement of the warehouse: rows of `V` indexed by `K`.
pub type Indexed<'scope, K, V> = differential_dataflow::operators::arrange::Arranged<
    'scope,
    TraceAgent<ValSpine<K, V, Time, isize>>,
>;
