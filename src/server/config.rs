//! Server configuration from command-line flags, each with an environment
//! variable. Site settings (address, paths of the built assets) come from
//! `Leptos.toml` and its `LEPTOS_*` variables; this adds what is ours.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

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
}
