//! The browser half (hydrate build only): the IndexedDB store, the page-side
//! actions behind the UI, and the sync worker.

pub mod account;
pub mod actions;
pub mod db;
pub mod live;
pub mod pwa;
pub mod session;
pub mod split;
pub mod timings;
pub mod worker;

/// Hydrates the server-rendered page.
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(crate::app::App);
}

/// Milliseconds since the Unix epoch, from the browser's clock.
pub fn now_ms() -> u64 {
    // Date.now() is a whole, non-negative number of milliseconds.
    js_sys::Date::now() as u64
}

/// Ten random bytes from the platform's cryptographic generator (in the page
/// or in a worker), for ids.
pub fn random10() -> [u8; 10] {
    use wasm_bindgen::JsCast;
    let mut bytes = [0u8; 10];
    let crypto = js_sys::Reflect::get(&js_sys::global(), &"crypto".into())
        .ok()
        .and_then(|c| c.dyn_into::<web_sys::Crypto>().ok());
    let filled = crypto
        .map(|c| c.get_random_values_with_u8_array(&mut bytes).is_ok())
        .unwrap_or(false);
    if !filled {
        // Only reachable on a browser without Web Crypto; ids then stay unique
        // through their millisecond prefix and Math.random.
        for b in &mut bytes {
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
    }
    bytes
}
