//! The HTML shell rendered by the server and the root component hydrated in
//! the browser.

use leptos::either::EitherOf4;
use leptos::prelude::*;

use crate::ui::{current_route, NotesPage, SignInPage, SignUpPage};

/// The app's pages, by path.
///
/// The page is picked once, from the path the server rendered (in the
/// browser, as the server marked it on `<body>`), rather than by a
/// client-side router: every move between these pages is a full
/// navigation anyway (signing in or out starts the page afresh, and the
/// service worker has each page cached). A router would type-erase each
/// page's view, which keeps a second, never used, asynchronous hydration of
/// the whole page in the bundle (docs/performance.md, The bundle).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageRoute {
    Notes,
    SignIn,
    SignUp,
    /// Any other path: the server answers it with status 404.
    NotFound,
}

impl PageRoute {
    /// Every page the server renders, which the service worker also keeps.
    pub const SERVED: [PageRoute; 3] = [PageRoute::Notes, PageRoute::SignIn, PageRoute::SignUp];

    /// The paths of every served page.
    pub fn served_paths() -> impl Iterator<Item = &'static str> {
        Self::SERVED.into_iter().filter_map(PageRoute::path)
    }

    /// The page's path; `None` for [`PageRoute::NotFound`].
    pub fn path(self) -> Option<&'static str> {
        match self {
            PageRoute::Notes => Some("/"),
            PageRoute::SignIn => Some("/signin"),
            PageRoute::SignUp => Some("/signup"),
            PageRoute::NotFound => None,
        }
    }

    /// The page at `path` (without its query).
    pub fn of_path(path: &str) -> PageRoute {
        Self::SERVED
            .into_iter()
            .find(|route| route.path() == Some(path))
            .unwrap_or(PageRoute::NotFound)
    }
}

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
                <title>"notesync"</title>
                <meta name="description" content="Offline-first notes that sync" />
                <meta name="theme-color" content="#1f6feb" />
                <link id="leptos" rel="stylesheet" href="/pkg/notesync.css" />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                <link rel="manifest" href="/manifest.webmanifest" />
                <link rel="apple-touch-icon" href="/icons/apple-touch-icon.png" />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
            </head>
            // The page this document is, for the browser to hydrate the same
            // one: a service worker answering offline for an address it does
            // not have serves the notes page there (client::session).
            <body data-page=current_route().path()>
                <App />
            </body>
        </html>
    }
}

/// The root component.
#[component]
pub fn App() -> impl IntoView {
    match current_route() {
        PageRoute::Notes => EitherOf4::A(view! { <NotesPage /> }),
        PageRoute::SignIn => EitherOf4::B(view! { <SignInPage /> }),
        PageRoute::SignUp => EitherOf4::C(view! { <SignUpPage /> }),
        PageRoute::NotFound => EitherOf4::D(view! {
            <main class="not-found">
                <p>"Page not found."</p>
                <p>
                    <a href="/">"Open your notes"</a>
                </p>
            </main>
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::PageRoute;

    #[test]
    fn every_served_page_is_found_at_its_own_path() {
        for route in PageRoute::SERVED {
            let path = route.path().expect("served pages have a path");
            assert_eq!(PageRoute::of_path(path), route);
        }
    }

    #[test]
    fn other_paths_are_not_found() {
        for path in ["", "/signin/", "/SignIn", "/notes", "/signup/x", "//"] {
            assert_eq!(PageRoute::of_path(path), PageRoute::NotFound, "{path}");
        }
    }
}
