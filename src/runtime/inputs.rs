//! The inputs a worker feeds the warehouse's dataflow: its share of the two source tables and,
//! in a durable job, the marks that tell the sink what its log holds durably.

use timely::dataflow::operators::vec::input::Handle as InputHandle;

use crate::model::rows::{Consumption, ConsumptionId, User, UserId};
use crate::model::Time;

/// The inputs a worker feeds: the two source tables and, in a durable job, its durability
/// marks for the sink.
pub struct Inputs {
    pub users: InputHandle<Time, (UserId, Option<User>, Time)>,
    pub consumption: InputHandle<Time, (ConsumptionId, Option<Consumption>, Time)>,
    pub marks: Option<InputHandle<Time, (usize, Time)>>,
}

impl Inputs {
    pub fn advance_to(&mut self, time: Time) {
        self.users.advance_to(time);
        self.consumption.advance_to(time);
        if let Some(marks) = &mut self.marks {
            marks.advance_to(time);
        }
    }

    pub fn flush(&mut self) {
        self.users.flush();
        self.consumption.flush();
        if let Some(marks) = &mut self.marks {
            marks.flush();
        }
    }

    /// Tells the sink that this worker's input up to `time` is durable.
    pub fn mark_durable(&mut self, worker: usize, time: Time) {
        if let Some(marks) = &mut self.marks {
            marks.send((worker, time));
            marks.flush();
        }
    }
}
