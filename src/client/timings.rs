//! Timings of the sync's steps, written to the console when switched on:
//! what the browser benchmark's figures are made of, step by step.
//!
//! Switch on with `localStorage.setItem("notesync.timings", "1")` and a
//! reload (the page tells its worker); `end2end/bench/run` with `TIMINGS=1`
//! does it for every device and prints the lines. Each line reads
//! `notesync timing <step> <ms> ms at <epoch ms>`, the epoch time being the
//! step's start on the clock every context shares. Off (the default), a step
//! costs one flag check.

use std::cell::Cell;

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
}

/// The localStorage key that switches timings on for a browser profile.
pub const STORAGE_KEY: &str = "notesync.timings";

pub fn set_enabled(on: bool) {
    ON.with(|flag| flag.set(on));
}

pub fn enabled() -> bool {
    ON.with(Cell::get)
}

/// The start of a step, if timings are on.
pub fn start() -> Option<f64> {
    enabled().then(now_ms)
}

/// Logs the step begun at `started` (from [`start`]).
pub fn end(step: &str, started: Option<f64>) {
    if let Some(at) = started {
        let line = format!(
            "notesync timing {step} {:.1} ms at {:.1}",
            now_ms() - at,
            time_origin() + at
        );
        web_sys::console::log_1(&line.into());
    }
}

fn performance() -> Option<wasm_bindgen::JsValue> {
    js_sys::Reflect::get(&js_sys::global(), &"performance".into()).ok()
}

/// Milliseconds since this context started, sub-millisecond (the page's
/// `performance` and the worker's are both reached through the global).
fn now_ms() -> f64 {
    use wasm_bindgen::JsCast;
    performance()
        .and_then(|p| {
            let now = js_sys::Reflect::get(&p, &"now".into()).ok()?;
            now.dyn_into::<js_sys::Function>().ok()?.call0(&p).ok()
        })
        .and_then(|v| v.as_f64())
        .unwrap_or_else(js_sys::Date::now)
}

fn time_origin() -> f64 {
    performance()
        .and_then(|p| js_sys::Reflect::get(&p, &"timeOrigin".into()).ok())
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0)
}
