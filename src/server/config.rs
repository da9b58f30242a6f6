//! Server configuration from command-line flags, each with an environment
//! variable. Site settings (address, paths of the built assets) come from
//! `Leptos.toml` and its `LEPTOS_*` variables; this adds what is ours.
//!
//! The Couchbase password is a [`Secret`]: `Debug` redacts it and `--help`
//! never shows its environment value.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, ValueEnum};
use thiserror::Error;

use super::couchbase::{CouchbaseSettings, Secret};
use crate::sync::merge::Strategy;

/// Which store keeps the server's copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// redb in the data directory: one machine, no set-up.
    Embedded,
    /// A Couchbase cluster (Data service only), shared by many servers.
    Couchbase,
}

/// How to reach Couchbase; used only with `--store couchbase`.
#[derive(Debug, Clone, Args)]
pub struct CouchbaseArgs {
    /// Connection string, e.g. couchbase://localhost or couchbases://host.
    #[arg(long = "couchbase-connstr", env = "COUCHBASE_CONNSTR")]
    pub connstr: Option<String>,

    /// RBAC user (needs data_reader and data_writer on the bucket or scope).
    #[arg(long = "couchbase-username", env = "COUCHBASE_USERNAME")]
    pub username: Option<String>,

    /// Password of that user.
    #[arg(
        long = "couchbase-password",
        env = "COUCHBASE_PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<Secret>,

    /// Bucket holding the scope (create the bucket ahead of time).
    #[arg(long = "couchbase-bucket", env = "COUCHBASE_BUCKET")]
    pub bucket: Option<String>,

    /// Scope of notesync's collection; created on start when missing.
    #[arg(
        long = "couchbase-scope",
        env = "COUCHBASE_SCOPE",
        default_value = "notesync",
        value_parser = keyspace_name
    )]
    pub scope: String,

    /// Collection of every notesync document; created on start when missing.
    #[arg(
        long = "couchbase-collection",
        env = "COUCHBASE_COLLECTION",
        default_value = "sync",
        value_parser = keyspace_name
    )]
    pub collection: String,

    /// Limit of each KV call, in milliseconds.
    #[arg(
        long = "couchbase-timeout-ms",
        env = "COUCHBASE_TIMEOUT_MS",
        default_value_t = 2_500,
        value_parser = clap::value_parser!(u64).range(100..=60_000)
    )]
    pub timeout_ms: u64,

    /// Wait for a majority of replicas on every write, so a failover loses
    /// nothing acknowledged (needs a bucket with at least one replica).
    #[arg(long = "couchbase-durable", env = "COUCHBASE_DURABLE")]
    pub durable: bool,
}

/// A setting `--store couchbase` cannot do without.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0} is required with --store couchbase (flag or environment variable)")]
pub struct MissingSetting(pub &'static str);

impl CouchbaseArgs {
    /// The adapter's settings; names the first missing one.
    pub fn settings(&self) -> Result<CouchbaseSettings, MissingSetting> {
        let need = |value: &Option<String>, name| value.clone().ok_or(MissingSetting(name));
        Ok(CouchbaseSettings {
            connstr: need(&self.connstr, "COUCHBASE_CONNSTR")?,
            username: need(&self.username, "COUCHBASE_USERNAME")?,
            password: self
                .password
                .clone()
                .ok_or(MissingSetting("COUCHBASE_PASSWORD"))?,
            bucket: need(&self.bucket, "COUCHBASE_BUCKET")?,
            scope: self.scope.clone(),
            collection: self.collection.clone(),
            timeout: Duration::from_millis(self.timeout_ms),
            concurrency: 32,
            durable: self.durable,
        })
    }
}

/// Couchbase's rule for scope and collection names: 1 to 251 characters
/// from `A-Za-z0-9_-%`, not starting with `_` or `%`.
fn keyspace_name(text: &str) -> Result<String, String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '%');
    if text.is_empty()
        || text.len() > 251
        || text.starts_with(['_', '%'])
        || !text.chars().all(allowed)
    {
        return Err(format!(
            "{text:?} is not a Couchbase scope or collection name (1-251 of A-Z a-z 0-9 _ - %, not starting with _ or %)"
        ));
    }
    Ok(text.to_string())
}

/// notesync server.
#[derive(Debug, Clone, Parser)]
#[command(name = "notesync", version, about = "Offline-first notes server")]
pub struct Config {
    /// Which store keeps the notes: embedded or couchbase.
    #[arg(long, env = "NOTESYNC_STORE", value_enum, default_value_t = StoreKind::Embedded)]
    pub store: StoreKind,

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

    /// How often, in milliseconds, the server reads the feed head of each
    /// user with an open poke stream, to poke them about changes pushed
    /// through other server instances sharing the store.
    #[arg(
        long,
        env = "NOTESYNC_POKE_WATCH_MS",
        default_value_t = 1_000,
        value_parser = clap::value_parser!(u64).range(50..=60_000)
    )]
    pub poke_watch_ms: u64,

    /// Milliseconds between the heartbeats of an idle event stream (the
    /// browser takes three missed beats for a dead connection).
    #[arg(
        long,
        env = "NOTESYNC_HEARTBEAT_MS",
        default_value_t = 15_000,
        value_parser = clap::value_parser!(u64).range(100..=60_000)
    )]
    pub heartbeat_ms: u64,

    /// Seconds an event stream lasts before the server says `bye` and the
    /// browser reconnects at once.
    #[arg(
        long,
        env = "NOTESYNC_STREAM_MAX_SECS",
        default_value_t = 6 * 60 * 60,
        value_parser = clap::value_parser!(u64).range(1..=7 * 24 * 60 * 60)
    )]
    pub stream_max_secs: u64,

    /// Most open event streams of one account (one per browser); a new one
    /// closes the oldest.
    #[arg(long, env = "NOTESYNC_STREAMS_PER_ACCOUNT", default_value_t = 16,
        value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub streams_per_account: u32,

    /// Most open event streams from one client address (IPv6: one /64); a
    /// new one closes the oldest.
    #[arg(long, env = "NOTESYNC_STREAMS_PER_ADDRESS", default_value_t = 64,
        value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub streams_per_address: u32,

    /// Requests handled at once (event streams aside); past it a request
    /// is answered 503 with Retry-After.
    #[arg(long, env = "NOTESYNC_MAX_IN_FLIGHT", default_value_t = 512,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_in_flight: u32,

    /// Pushes one account may make per second, sustained (429 beyond).
    #[arg(long, env = "NOTESYNC_PUSHES_PER_SECOND", default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub pushes_per_second: u32,

    /// Pushes one account may make at once before the rate applies.
    #[arg(long, env = "NOTESYNC_PUSH_BURST", default_value_t = 60,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub push_burst: u32,

    /// Pulls one account may make per second, sustained (429 beyond).
    #[arg(long, env = "NOTESYNC_PULLS_PER_SECOND", default_value_t = 20,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub pulls_per_second: u32,

    /// Pulls one account may make at once before the rate applies.
    #[arg(long, env = "NOTESYNC_PULL_BURST", default_value_t = 200,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub pull_burst: u32,

    /// Most live notes one account may keep; a change past it is refused
    /// (deletes always go through) and kept by the browser until there is
    /// room.
    #[arg(long, env = "NOTESYNC_QUOTA_NOTES", default_value_t = 100_000,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub quota_notes: u64,

    /// Most text one account may keep, in megabytes (10^6 bytes) of titles,
    /// bodies and tags; past it, as for notes.
    #[arg(long, env = "NOTESYNC_QUOTA_MB", default_value_t = 1_000,
        value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    pub quota_mb: u64,

    #[command(flatten)]
    pub couchbase: CouchbaseArgs,
}

impl Config {
    /// What one account may keep.
    pub fn quota(&self) -> crate::store::Quota {
        crate::store::Quota {
            max_notes: self.quota_notes,
            max_bytes: self.quota_mb.saturating_mul(1_000_000),
        }
    }

    /// The limits on requests in flight and on each account's rates.
    pub fn protection(&self) -> super::limits::ProtectionSettings {
        super::limits::ProtectionSettings {
            max_in_flight: self.max_in_flight as usize,
            pushes_per_second: self.pushes_per_second,
            push_burst: self.push_burst,
            pulls_per_second: self.pulls_per_second,
            pull_burst: self.pull_burst,
        }
    }

    /// The event streams' timings and caps.
    pub fn streams(&self) -> super::pokes::StreamSettings {
        super::pokes::StreamSettings {
            heartbeat: Duration::from_millis(self.heartbeat_ms),
            max_stream: Duration::from_secs(self.stream_max_secs),
            per_account: self.streams_per_account as usize,
            per_address: self.streams_per_address as usize,
            ..super::pokes::StreamSettings::default()
        }
    }
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

    #[test]
    fn the_embedded_store_is_the_default_and_couchbase_is_chosen_by_flags() {
        let c = Config::try_parse_from(["notesync"]).expect("defaults parse");
        assert_eq!(c.store, StoreKind::Embedded);
        let c = Config::try_parse_from([
            "notesync",
            "--store",
            "couchbase",
            "--couchbase-connstr",
            "couchbase://db.internal",
            "--couchbase-username",
            "notesync",
            "--couchbase-password",
            "hunter2",
            "--couchbase-bucket",
            "notes",
            "--couchbase-scope",
            "tenant-1",
            "--couchbase-collection",
            "sync_v1",
            "--couchbase-durable",
        ])
        .expect("flags parse");
        assert_eq!(c.store, StoreKind::Couchbase);
        let s = c.couchbase.settings().expect("complete settings");
        assert_eq!(
            (s.connstr.as_str(), s.username.as_str(), s.bucket.as_str()),
            ("couchbase://db.internal", "notesync", "notes")
        );
        assert_eq!(
            (s.scope.as_str(), s.collection.as_str()),
            ("tenant-1", "sync_v1")
        );
        assert_eq!(s.password.expose(), "hunter2");
        assert!(s.durable);
        assert!(
            !format!("{c:?}").contains("hunter2"),
            "Debug shows the password"
        );
    }

    #[test]
    fn couchbase_settings_name_what_is_missing_and_refuse_bad_names() {
        let c = Config::try_parse_from([
            "notesync",
            "--couchbase-connstr",
            "couchbase://db",
            "--couchbase-username",
            "u",
        ])
        .expect("flags parse");
        assert_eq!(
            c.couchbase.settings().map(|_| ()),
            Err(MissingSetting("COUCHBASE_PASSWORD"))
        );
        for bad in ["_system", "%x", "a.b", ""] {
            assert!(
                Config::try_parse_from(["notesync", "--couchbase-scope", bad]).is_err(),
                "{bad:?} accepted"
            );
        }
        assert!(Config::try_parse_from(["notesync", "--store", "mongo"]).is_err());
    }
}
