//! The sign-in and sign-up pages: one form, two purposes. The server checks
//! everything again; the form only says early what it would refuse.

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
    Effect::new(move |_| {
        ready.set(true);
        platform::auth_page_opened();
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let (n, p) = (name.get_untracked(), password.get_untracked());
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
    view! {
        <main class="auth">
            <form class="auth-form" data-ready=move || ready.get().then_some("true") on:submit=submit>
                <h1>{heading}</h1>
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
                <button type="submit" class="primary">{action}</button>
                <p class="muted">{other_text} " " <a href=other_href>{other_link}</a></p>
            </form>
        </main>
    }
}
