//! Integration tests through Kefu's real interfaces: one test binary.

mod fake_wechat;
mod helpers;
mod wechat_api;
mod wechat_client;

mod admin_api;
mod admin_pages;
mod agent_media;
mod board;
mod browser;
mod bus;
mod cli;
mod conversations;
mod crm;
mod customer_panel;
mod desk;
mod health;
mod ip_region;
mod load_tool;
mod login;
mod media;
mod notes;
mod official_account;
mod outbox;
mod quick_replies;
mod routing;
mod search;
mod setup;
mod survey;
mod tickets;
mod timeouts;
mod transfer;
mod unionid;
mod wecom;
mod widget_page;
mod workbench;
