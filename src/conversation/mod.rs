//! The conversation pipeline: the inbound seam — every channel's messages
//! are committed here (group commit) and announced on the bus — then
//! `pipeline`, which finds each message's customer and conversation and moves
//! the conversation's state machine (`state`), routing requests for a human;
//! `timeouts`, the clocks that close idle conversations and offer unanswered
//! customers to another agent; `unionid`, which joins the customers one
//! WeChat user is on several accounts.

pub mod effects;
pub mod ingest;
pub mod outbox;
pub mod pipeline;
pub mod state;
pub mod timeouts;
pub mod unionid;
