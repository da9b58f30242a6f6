//! Server bootstrap only: configuration, then the server module does the rest.

#[cfg(feature = "ssr")]
#[tokio::main]
async fn main() -> std::process::ExitCode {
    notesync::server::run().await
}

#[cfg(not(feature = "ssr"))]
fn main() {
    // The binary is the server; the browser half is the library built with `hydrate`.
}
