//! sea-orm entities, one file per table, mirroring `migrations/`.

pub mod accounts;
pub mod agent_shifts;
pub mod agents;
pub mod city_groups;
pub mod conversation_reads;
pub mod conversation_transitions;
pub mod conversations;
pub mod crm_events;
pub mod crm_versions;
pub mod customer_identities;
pub mod customers;
pub mod group_members;
pub mod kf_cursors;
pub mod login_failures;
pub mod media_downloads;
pub mod media_objects;
pub mod media_uploads;
pub mod messages;
pub mod outbox;
pub mod region_groups;
pub mod sessions;
pub mod setup_tokens;
pub mod surveys;
pub mod ticket_events;
pub mod tickets;
pub mod vehicle_trades;
