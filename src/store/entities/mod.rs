//! sea-orm entities, one file per table, mirroring `migrations/`.

pub mod accounts;
pub mod agents;
pub mod setup_tokens;
