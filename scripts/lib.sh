# Shared set-up for the project's scripts: finds or installs a Rust toolchain
# that can build the wasm half, the wasm-bindgen CLI, Chromium and the npm
# tools. Every step is skipped when what it provides is already there.
# Sourced by scripts/run, scripts/build and scripts/test.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Where cargo puts what it builds (the site itself always goes to
# $ROOT/target/site, where Leptos.toml points).
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
WASM_BINDGEN_VERSION="0.2.130" # must equal the wasm-bindgen pin in Cargo.toml
WASM_TARGET="wasm32-unknown-unknown"
# Extra cargo arguments for the wasm build; set by setup_toolchain.
WASM_CARGO_ARGS=()
export PATH="$PATH:$HOME/.cargo/bin"

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "need root to run: $*"; fi
}

APT_UPDATED=0
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "missing packages (${missing[*]}) and no apt-get to install them"
  if [ "$APT_UPDATED" = 0 ]; then
    log "apt-get update"
    as_root apt-get update -qq
    APT_UPDATED=1
  fi
  log "installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

debian_toolchain_ready() {
  [ -x /usr/bin/cargo ] && [ -d /usr/lib/rustlib/src/rust/library ] && [ -x /usr/bin/rust-lld ] &&
    /usr/bin/cargo clippy --version >/dev/null 2>&1 && /usr/bin/cargo fmt --version >/dev/null 2>&1
}

use_debian_toolchain() {
  # Debian's rustc-web has no prebuilt wasm std; build it from rust-web-src.
  export PATH="/usr/bin:$PATH"
  WASM_CARGO_ARGS=(-Zbuild-std=std,panic_abort)
  TOOLCHAIN_KIND="debian"
}

# Chooses the toolchain per machine (TOOLCHAIN.md): rustup's when it has, or
# can download, the wasm target; otherwise Debian's web toolchain with the
# std rebuilt for wasm (machines whose only network is the package registries).
setup_toolchain() {
  if command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx "$WASM_TARGET"; then
    TOOLCHAIN_KIND="rustup"
  elif debian_toolchain_ready; then
    use_debian_toolchain
  elif command -v rustup >/dev/null && curl -fsS --max-time 5 -o /dev/null https://static.rust-lang.org/ 2>/dev/null; then
    log "adding the $WASM_TARGET target with rustup"
    rustup target add "$WASM_TARGET"
    TOOLCHAIN_KIND="rustup"
  else
    apt_install rustc-web cargo-web rust-web-src lld-22 rust-web-clippy rustfmt-web
    use_debian_toolchain
  fi
  export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-always}"
  log "toolchain: $TOOLCHAIN_KIND ($(cargo --version))"
}

# cargo for the wasm half, with the arguments this machine needs.
cargo_wasm() {
  local sub="$1"
  shift
  if [ "$TOOLCHAIN_KIND" = debian ]; then
    RUSTC_BOOTSTRAP=1 cargo "$sub" --target "$WASM_TARGET" "${WASM_CARGO_ARGS[@]}" "$@"
  else
    cargo "$sub" --target "$WASM_TARGET" "$@"
  fi
}

# The release wasm rebuilds std with the `wasm-release` profile (`opt-level
# = 'z'`) instead of linking rustup's prebuilt one, and builds with
# `-Zlocation-detail=none`, which drops the file, line and column from
# panic messages (their text stays). Together 13 KB less brotli to open the
# app (docs/performance.md, The bundle). Both are unstable options: with
# RUSTC_BOOTSTRAP they work on a stable toolchain, as `-Zbuild-std` already
# does on Debian's. std's `optimize_for_size` feature would take 8 KB more,
# but swaps std's sorts and text searches for slower ones; not used.
NO_PANIC_LOCATIONS=(--config 'target.wasm32-unknown-unknown.rustflags=["-Zlocation-detail=none"]')
STD_REBUILT=(-Zbuild-std=std,panic_abort)

# Whether std's source is there to rebuild it: Debian's rust-web-src, or
# rustup's rust-src, added when missing. Fails, after a warning, where it
# cannot be had (rustup with no network); the release wasm then links the
# prebuilt std.
ensure_std_source() {
  [ "$TOOLCHAIN_KIND" = debian ] && return 0
  rustup component list --installed 2>/dev/null | grep -q '^rust-src' && return 0
  log "adding rustup's rust-src (the release wasm rebuilds std)"
  if ! timeout 300 rustup component add rust-src >&2; then
    log "warning: no std source; the release wasm links the prebuilt std (about 5 KB larger)"
    return 1
  fi
}

# cargo build of the release wasm, with std rebuilt where it can be.
cargo_wasm_release() {
  local std=()
  if ensure_std_source; then std=("${STD_REBUILT[@]}"); fi
  RUSTC_BOOTSTRAP=1 cargo build --target "$WASM_TARGET" "${std[@]}" "${NO_PANIC_LOCATIONS[@]}" "$@"
}

ensure_wasm_bindgen() {
  if command -v wasm-bindgen >/dev/null && [ "$(wasm-bindgen --version | awk '{print $2}')" = "$WASM_BINDGEN_VERSION" ]; then
    return 0
  fi
  log "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (a few minutes, once)"
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
  export PATH="$HOME/.cargo/bin:$PATH"
}

WASM_SPLIT_VERSION="0.2.4" # the splitter of wasm_split_helpers 0.2, which leptos uses
ensure_wasm_split() {
  if command -v wasm-split-cli >/dev/null &&
    cargo install --list | grep -qx "wasm_split_cli_support v$WASM_SPLIT_VERSION:"; then
    return 0
  fi
  log "installing wasm-split-cli $WASM_SPLIT_VERSION (about a minute, once)"
  cargo install --locked wasm_split_cli_support --version "$WASM_SPLIT_VERSION" --features build-binary
  export PATH="$HOME/.cargo/bin:$PATH"
}

ensure_node_tools() {
  command -v npm >/dev/null || apt_install nodejs npm
  if [ ! -x "$ROOT/node_modules/.bin/playwright" ] || [ ! -x "$ROOT/node_modules/.bin/wasm-opt" ] ||
    [ "$ROOT/package.json" -nt "$ROOT/node_modules/.package-lock.json" ]; then
    log "installing npm tools (Playwright test runner, binaryen)"
    (cd "$ROOT" && npm install --no-audit --no-fund)
  fi
}

ensure_chromium() {
  command -v chromium >/dev/null || apt_install chromium
}

ensure_compression_tools() {
  command -v brotli >/dev/null || apt_install brotli
}
