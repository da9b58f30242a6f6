//! The sign-in and sign-up pages: one form, two purposes. The server checks
//! everything again; the form only says early what it would refuse.
//!
//! Signing in as someone else while an account is signed in on this browser
//! is an explicit switch: the form says who is signed in, and asks to
//! confirm before it signs in another account (whose tabs then stop syncing
//! the first account's notes, which stay on this device).

use leptos::prelude::*;

use super::platform;
use crate::domain::{Password, UserName};

/// `/signin`.
#[component]
pub fn SignInPage() -> impl IntoView {
    view! { <AccountForm create=false /> }
}

/// `/signup`.
#[component]
pub fn SignUpPage() -> impl IntoView {
    view! { <AccountForm create=true /> }
}

#[component]
fn AccountForm(create: bool) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    // Effects run only once the page is hydrated: from then on the form's
    // handlers are live (tests wait for `data-ready`).
    let ready = RwSignal::new(false);
    // Who is signed in on this browser now, if anyone (read once hydrated:
    // the server renders the form without it).
    let signed_in = RwSignal::new(None::<String>);
    // The other name the person confirmed switching to.
    let switching_to = RwSignal::new(None::<String>);
    // The deletion of a signed-out person's data waits for an old tab.
    let blocked = RwSignal::new(false);
    Effect::new(move |_| {
        signed_in.set(platform::signed_in_here());
        ready.set(true);
        platform::auth_page_opened(blocked);
    });
    // A switch needs confirming while the name typed is another one.
    let switch_needed = move || {
        signed_in.with(|current| {
            current
                .as_ref()
                .is_some_and(|current| name.with(|n| !n.is_empty() && n != current))
        })
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let (n, p) = (name.get_untracked(), password.get_untracked());
        if untrack(switch_needed) && switching_to.get_untracked().as_deref() != Some(n.as_str()) {
            switching_to.set(Some(n));
            return;
        }
        if create {
            if let Err(e) = UserName::parse(&n) {
                error.set(Some(e.to_string()));
                return;
            }
            if let Err(e) = Password::parse(&p) {
                error.set(Some(e.to_string()));
                return;
            }
        }
        error.set(None);
        platform::submit_account(create, n, p, error);
    };
    let (heading, action, other_text, other_href, other_link) = if create {
        (
            "Create your notesync account",
            "Create account",
            "Already have an account?",
            "/signin",
            "Sign in",
        )
    } else {
        (
            "Sign in to notesync",
            "Sign in",
            "New here?",
            "/signup",
            "Create an account",
        )
    };
    let confirming = move || {
        switch_needed() && switching_to.with(|to| name.with(|n| to.as_deref() == Some(n.as_str())))
    };
    view! {
        <main class="auth">
            <form class="auth-form" data-ready=move || ready.get().then_some("true") on:submit=submit>
                <h1>{heading}</h1>
                <Show when=move || signed_in.with(Option::is_some)>
                    <p class="notice" data-testid="signed-in-here" role="status">
                        {move || {
                            let current = signed_in.get().unwrap_or_default();
                            format!(
                                "{current} is signed in on this browser. Signing in as someone else switches this browser to them: {current}'s notes stay on this device, and sync again when {current} signs in."
                            )
                        }}
                    </p>
                </Show>
                <Show when=move || blocked.get()>
                    <p class="notice" role="status" data-testid="delete-blocked">
                        "Another notesync tab of an older version still has the signed-out notes open: close it to finish removing them from this device."
                    </p>
                </Show>
                <label for="account-name">"Name"</label>
                <input
                    id="account-name"
                    name="name"
                    type="text"
                    autocomplete="username"
                    required
                    prop:value=move || name.get()
                    on:input=move |ev| name.set(event_target_value(&ev))
                />
                <label for="account-password">"Password"</label>
                <input
                    id="account-password"
                    name="password"
                    type="password"
                    autocomplete=if create { "new-password" } else { "current-password" }
                    required
                    prop:value=move || password.get()
                    on:input=move |ev| password.set(event_target_value(&ev))
                />
                <Show when=move || error.get().is_some()>
                    <p class="form-error" role="alert" data-testid="auth-error">
                        {move || error.get().unwrap_or_default()}
                    </p>
                </Show>
                <Show when=confirming>
                    <p class="form-error" role="alert" data-testid="confirm-switch">
                        {move || format!(
                            "Press the button again to sign {} out of this browser and continue as {}.",
                            signed_in.get().unwrap_or_default(),
                            name.get(),
                        )}
                    </p>
                </Show>
                <button type="submit" class="primary">
                    {move || if confirming() { "Switch account".to_string() } else { action.to_string() }}
                </button>
                <p class="muted">{other_text} " " <a href=other_href>{other_link}</a></p>
            </form>
        </main>
    }
}
