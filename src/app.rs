//! The HTML shell rendered by the server and the root component hydrated in
//! the browser.

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, Link, Meta, MetaTags, Stylesheet, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::StaticSegment;

use crate::ui::{NotesPage, SignInPage, SignUpPage};

/// The document around the app. Notes are never rendered here: the server has
/// no copy of the browser's notes, and the page must hydrate identically from
/// a cached shell, so the list is filled from IndexedDB after hydration.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// The root component.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/notesync.css" />
        <Title text="notesync" />
        <Meta name="description" content="Offline-first notes that sync" />
        <Meta name="theme-color" content="#1f6feb" />
        <Link rel="icon" href="/favicon.svg" type_="image/svg+xml" />
        <Link rel="manifest" href="/manifest.webmanifest" />
        <Link rel="apple-touch-icon" href="/icons/apple-touch-icon.png" />
        <Router>
            <Routes fallback=|| view! { <p class="not-found">"Page not found."</p> }>
                <Route path=StaticSegment("") view=NotesPage />
                <Route path=StaticSegment("signin") view=SignInPage />
                <Route path=StaticSegment("signup") view=SignUpPage />
            </Routes>
        </Router>
    }
}
