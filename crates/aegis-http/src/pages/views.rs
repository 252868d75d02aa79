//! The page templates, compiled into the binary (maud): one layout, a message page and the forms.
//! Every string comes from [`Text`] or from the caller; maud escapes all of it.

use maud::{DOCTYPE, Markup, html};

use super::text::Text;

/// A field's errors, in the order they are shown; the field name is also the input's `id`.
pub type Errors<'a> = &'a [(&'static str, Vec<String>)];

/// The page around every content: the site's name in the header, one `h1`.
pub fn layout(t: &Text, site: Option<&str>, title: &str, content: Markup) -> Markup {
    let site = site.unwrap_or(t.no_site);
    html! {
        (DOCTYPE)
        html lang=(t.lang) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) " – " (site) }
                link rel="stylesheet" href="assets/pages.css";
            }
            body {
                header.site { p.site-name { (site) } }
                main id="main" {
                    h1 { (title) }
                    (content)
                }
            }
        }
    }
}

/// A page that says something and offers at most one link onwards.
pub fn message(
    t: &Text,
    site: Option<&str>,
    title: &str,
    body: &str,
    link: Option<&str>,
) -> Markup {
    layout(
        t,
        site,
        title,
        html! {
            p { (body) }
            @if let Some(href) = link {
                p { a href=(href) { (t.continue_to_site) } }
            }
        },
    )
}

/// The summary of every error above a form, each linking to its field.
fn summary(t: &Text, errors: Errors<'_>) -> Markup {
    html! {
        @if !errors.is_empty() {
            div.error-summary role="alert" aria-labelledby="error-summary-title" tabindex="-1" autofocus {
                h2 id="error-summary-title" { (t.error_summary) }
                ul {
                    @for (field, messages) in errors {
                        @for m in messages {
                            li { a href={ "#" (field) } { (m) } }
                        }
                    }
                }
            }
        }
    }
}

/// An input of a form.
#[derive(Clone, Copy)]
struct Input<'a> {
    name: &'static str,
    kind: &'a str,
    label: &'a str,
    hint: Option<&'a str>,
    autocomplete: &'a str,
    value: Option<&'a str>,
}

/// One labelled input with its hint and errors.
fn field(t: &Text, errors: Errors<'_>, input: &Input<'_>) -> Markup {
    let Input {
        name,
        kind,
        label,
        hint,
        autocomplete,
        value,
    } = *input;
    let messages: &[String] = errors
        .iter()
        .find(|(f, _)| *f == name)
        .map_or(&[], |(_, m)| m.as_slice());
    let invalid = !messages.is_empty();
    let hint_id = format!("{name}-hint");
    let error_id = format!("{name}-error");
    let mut described = Vec::new();
    if hint.is_some() {
        described.push(hint_id.as_str());
    }
    if invalid {
        described.push(error_id.as_str());
    }
    let described = described.join(" ");
    html! {
        div.field.field-error[invalid] {
            label for=(name) { (label) }
            @if let Some(hint) = hint {
                span.hint id=(hint_id) { (hint) }
            }
            @if invalid {
                span.error-message id=(error_id) {
                    span.visually-hidden { (t.error_prefix) " " }
                    @for (i, m) in messages.iter().enumerate() {
                        @if i > 0 { " " }
                        (m)
                    }
                }
            }
            input id=(name) name=(name) type=(kind) autocomplete=(autocomplete) required
                value=[value] aria-invalid=[invalid.then_some("true")]
                aria-describedby=[(!described.is_empty()).then_some(described.as_str())];
        }
    }
}

/// The hidden fields every form carries.
fn hidden(csrf: &str, token: Option<&str>, site_id: Option<&str>) -> Markup {
    html! {
        input type="hidden" name="csrf_token" value=(csrf);
        @if let Some(token) = token {
            input type="hidden" name="token" value=(token);
        }
        @if let Some(site_id) = site_id {
            input type="hidden" name="site_id" value=(site_id);
        }
    }
}

/// What a password form says.
pub struct PasswordForm<'a> {
    /// The heading.
    pub title: &'a str,
    /// The introduction.
    pub intro: &'a str,
    /// The button.
    pub button: &'a str,
    /// Where it posts (relative, so a prefix is kept).
    pub action: &'a str,
}

/// A form choosing a new password, for a token-carrying link.
pub fn password_form(
    t: &Text,
    site: &str,
    form: &PasswordForm<'_>,
    token: &str,
    csrf: &str,
    errors: Errors<'_>,
) -> Markup {
    layout(
        t,
        Some(site),
        form.title,
        html! {
            (summary(t, errors))
            p { (form.intro) }
            form method="post" action=(form.action) novalidate {
                (hidden(csrf, Some(token), None))
                (field(t, errors, &Input {
                    name: "password",
                    kind: "password",
                    label: t.new_password,
                    hint: Some(t.new_password_hint),
                    autocomplete: "new-password",
                    value: None,
                }))
                button type="submit" { (form.button) }
            }
        },
    )
}

/// The email-change confirmation: one button, so that opening the link changes nothing.
pub fn confirm_form(t: &Text, site: &str, token: &str, csrf: &str) -> Markup {
    layout(
        t,
        Some(site),
        t.email_change_title,
        html! {
            p { (t.email_change_intro) }
            form method="post" action="confirm-email-change" {
                (hidden(csrf, Some(token), None))
                button type="submit" { (t.email_change_button) }
            }
        },
    )
}

/// The forgot-password form.
pub fn forgot_form(
    t: &Text,
    site: &str,
    site_id: &str,
    csrf: &str,
    email: Option<&str>,
    errors: Errors<'_>,
) -> Markup {
    layout(
        t,
        Some(site),
        t.forgot_title,
        html! {
            (summary(t, errors))
            p { (t.forgot_intro) }
            form method="post" action="forgot-password" novalidate {
                (hidden(csrf, None, Some(site_id)))
                (field(t, errors, &Input {
                    name: "email",
                    kind: "email",
                    label: t.email_label,
                    hint: None,
                    autocomplete: "email",
                    value: email,
                }))
                button type="submit" { (t.forgot_button) }
            }
        },
    )
}
