//! The one capability an operator holds when it processes complete times in order and may still
//! emit at the earliest time it has work for (an input to apply, an expiry to carry out): what
//! [`crate::operators::upsert`] and [`crate::operators::reduce`] share.

use timely::dataflow::operators::{Capability, InputCapability};

use crate::model::Time;

/// A capability at or before every time the operator still has work for, or none.
#[derive(Default)]
pub struct Earliest(Option<Capability<Time>>);

impl Earliest {
    /// Keeps the capability of an arriving message if it is earlier than the one held.
    pub fn hold(&mut self, arriving: &InputCapability<Time>) {
        if let Some(capability) = arriving.retain_least(0) {
            if self
                .0
                .as_ref()
                .is_none_or(|held| capability.time() < held.time())
            {
                self.0 = Some(capability);
            }
        }
    }

    /// The capability held, to emit at any time not before it.
    pub fn get(&self) -> Option<&Capability<Time>> {
        self.0.as_ref()
    }

    /// Moves the capability on to `next`, the earliest time with work left (not before the one
    /// held), or lets it go when there is none.
    pub fn advance(&mut self, next: Option<Time>) {
        match (next, self.0.as_mut()) {
            (Some(next), Some(capability)) => capability.downgrade(&next),
            (None, _) => self.0 = None,
            (Some(_), None) => {}
        }
    }
}
