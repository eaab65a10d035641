//! The conversation pipeline. For now: the inbound seam — every channel's
//! messages are committed here (group commit) and announced on the bus for
//! the pipeline stages that follow.

pub mod ingest;
pub mod outbox;
pub mod state;
