//! Authentication primitives shared by the console and the APIs.

pub mod password;
pub mod token;
