//! Authentication primitives shared by the console and the APIs: password
//! hashes, random tokens, roles, sessions, CSRF tokens and the extractors
//! that tell handlers who is asking.

pub mod credentials;
pub mod csrf;
pub mod extract;
pub mod password;
pub mod role;
pub mod session;
pub mod token;

pub use extract::{AuthError, CsrfForm, CurrentUser, NoFields};
pub use role::Role;
