//! Who serves whom: the company's routing rules.
//!
//! The pure heart: [`assign()`] is the assignment policy (dedicated agent,
//! city group, region, load, shifts, queue, nobody on duty) as a function of
//! a snapshot, with an explainable reason for every decision. Around it:
//! [`engine`] holds that snapshot in memory ([`Router`]: presence, load,
//! shifts, the region map) and decides under one lock; [`presence`] keeps
//! agents' status and heartbeats, and reconciles the router with the
//! database; [`queue`] drains the waiting conversations to agents as they
//! free up. [`region`] resolves a web visitor's IP address to a region
//! through the offline ip2region database ([`xdb`]); [`ip2region_cmd`]
//! fetches and inspects it.

pub mod assign;
pub mod engine;
pub mod geo;
pub mod ip2region_cmd;
pub mod presence;
pub mod queue;
pub mod region;
pub mod xdb;

pub use assign::{
    AgentSnapshot, AgentStatus, Customer, Decision, DecisionReason, Employment, GroupLabel,
    GroupMap, NotAvailable, Outcome, Rebind, Request, Scope, Shift, assign, queue_take,
};
pub use engine::{OpenScopes, Router};

#[cfg(test)]
mod policy_tests;
