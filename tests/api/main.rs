//! Integration tests through Kefu's real interfaces: one test binary.

mod fake_wechat;
mod helpers;

mod bus;
mod cli;
mod health;
mod setup;
