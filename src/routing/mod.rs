//! Who serves whom: the company's routing rules.
//!
//! For now the pure heart: [`assign()`] is the assignment policy (dedicated
//! agent, city group, region, load, shifts, queue, nobody on duty) as a
//! function of a snapshot, with an explainable reason for every decision.
//! Presence, the queue and shifts — the parts that keep that snapshot in
//! memory and consistent with the database — call into it. [`region`]
//! resolves a web visitor's IP address to a region through the offline
//! ip2region database ([`xdb`]); [`ip2region_cmd`] fetches and inspects it.

pub mod assign;
pub mod engine;
pub mod geo;
pub mod ip2region_cmd;
pub mod region;
pub mod xdb;

pub use assign::{
    AgentSnapshot, AgentStatus, Customer, Decision, DecisionReason, Employment, GroupLabel,
    GroupMap, NotAvailable, Outcome, Rebind, Request, Scope, Shift, assign, queue_take,
};
pub use engine::Router;

#[cfg(test)]
mod policy_tests;
