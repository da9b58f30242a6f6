//! Server configuration from command-line flags, each with an environment
//! variable. Site settings (address, paths of the built assets) come from
//! `Leptos.toml` and its `LEPTOS_*` variables; this adds what is ours.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::sync::merge::Strategy;

/// notesync server.
#[derive(Debug, Clone, Parser)]
#[command(name = "notesync", version, about = "Offline-first notes server")]
pub struct Config {
    /// Directory of the embedded store's data.
    #[arg(long, env = "NOTESYNC_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Address to listen on; overrides `site-addr` of Leptos.toml.
    #[arg(long, env = "NOTESYNC_ADDR")]
    pub addr: Option<SocketAddr>,

    /// The Leptos runtime settings file.
    #[arg(long, env = "NOTESYNC_LEPTOS_TOML", default_value = "Leptos.toml")]
    pub leptos_toml: String,

    /// How concurrent edits of a note are reconciled: merge, server-wins,
    /// client-wins or lww.
    #[arg(long, env = "NOTESYNC_CONFLICT_STRATEGY", default_value = "merge")]
    pub conflict_strategy: Strategy,

    /// Days a deleted note's tombstone (and an applied mutation id) is kept;
    /// replicas that stay offline longer resync from scratch.
    #[arg(
        long,
        env = "NOTESYNC_TOMBSTONE_RETENTION_DAYS",
        default_value_t = 90,
        value_parser = clap::value_parser!(u32).range(1..=36_500)
    )]
    pub tombstone_retention_days: u32,

    /// Mark session cookies `Secure`: set this whenever the app is served
    /// over HTTPS (directly or behind a TLS-terminating proxy).
    #[arg(long, env = "NOTESYNC_SECURE_COOKIES", default_value_t = false)]
    pub secure_cookies: bool,

    /// Days of inactivity after which a session ends and the person must
    /// sign in again (their notes stay on the device).
    #[arg(
        long,
        env = "NOTESYNC_SESSION_DAYS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u32).range(1..=365)
    )]
    pub session_days: u32,

    /// Sign-in and sign-up attempts allowed at once per client address; one
    /// more is allowed every 12 seconds.
    #[arg(long, env = "NOTESYNC_ATTEMPTS_PER_ADDRESS", default_value_t = 20)]
    pub attempts_per_address: u32,

    /// Sign-in attempts allowed at once per account name; one more is allowed
    /// every 12 seconds.
    #[arg(long, env = "NOTESYNC_ATTEMPTS_PER_NAME", default_value_t = 5)]
    pub attempts_per_name: u32,
}

impl Config {
    /// Reads flags and environment; exits with a usage message on bad input.
    pub fn parse_args() -> Self {
        Self::parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_default() {
        let c = Config::try_parse_from(["notesync"]).expect("defaults parse");
        assert_eq!(c.data_dir, PathBuf::from("data"));
        let c = Config::try_parse_from([
            "notesync",
            "--addr",
            "127.0.0.1:9000",
            "--data-dir",
            "/tmp/x",
        ])
        .expect("flags parse");
        assert_eq!(c.addr, Some("127.0.0.1:9000".parse().expect("addr")));
        assert!(Config::try_parse_from(["notesync", "--addr", "nope"]).is_err());
    }

    #[test]
    fn sync_flags_parse_and_default() {
        let c = Config::try_parse_from(["notesync"]).expect("defaults parse");
        assert_eq!(c.conflict_strategy, Strategy::Merge);
        assert_eq!(c.tombstone_retention_days, 90);
        let c = Config::try_parse_from([
            "notesync",
            "--conflict-strategy",
            "server-wins",
            "--tombstone-retention-days",
            "7",
        ])
        .expect("flags parse");
        assert_eq!(c.conflict_strategy, Strategy::ServerWins);
        assert_eq!(c.tombstone_retention_days, 7);
        assert!(Config::try_parse_from(["notesync", "--conflict-strategy", "theirs"]).is_err());
        assert!(Config::try_parse_from(["notesync", "--tombstone-retention-days", "0"]).is_err());
    }
}
