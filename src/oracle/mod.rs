//! Oracles that share no code with the dataflow or its batch twin: another system computes the
//! warehouse from the same ODS state, and `gridflow verify --against` holds the tables equal.
//!
//! Today there is one, PostgreSQL running `docs/queries/layers.sql` ([`postgres`]).

pub mod postgres;
