//! The account emails: subjects, links and bodies, rendered once when the message is queued.
//!
//! Links are built on the site's [`Site::frontend_url`] (verification links on a central page
//! instead, when [`verification`] is given one), so the tenant's frontend serves `/verify-email`,
//! `/reset-password`, `/confirm-email-change`, `/login` and `/forgot-password`, reading the `token`
//! query parameter where there is one. With hosted pages (`HOSTED_PAGES_URL`, decision 80) every
//! link but `/login` goes to Aegis's own pages at that base instead, for every site; the
//! forgot-password link then names the site (`?site_id=…`), since it carries no token to find it
//! by. The site's name is HTML-escaped in the HTML bodies.

use crate::site::Site;

/// Which message a queued email is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailKind {
    /// Verify an address: sent on registration, invitation, creation by an operator or admin,
    /// and resend ([`verification`]).
    Verification,
    /// Someone tried to register an address that already has an account ([`sign_in_attempt`]).
    SignInAttempt,
    /// A password-reset link ([`password_reset`]).
    PasswordReset,
    /// Confirmation of a new address, sent to that address ([`email_change`]).
    EmailChange,
}

impl EmailKind {
    /// The stable name stored with a queued message (`verification`, `sign_in_attempt`,
    /// `password_reset`, `email_change`); do not change it, stored rows carry it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Verification => "verification",
            Self::SignInAttempt => "sign_in_attempt",
            Self::PasswordReset => "password_reset",
            Self::EmailChange => "email_change",
        }
    }
}

/// A rendered message for one recipient.
#[derive(Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    /// Which message this is.
    pub kind: EmailKind,
    /// The recipient, in its normal form.
    pub to: String,
    /// The subject line, naming the site.
    pub subject: String,
    /// The plain-text body. Holds the link's token, if the kind has one: a secret until the
    /// token expires or is used.
    pub text: String,
    /// The HTML body, with the same link as `text`.
    pub html: String,
}

impl std::fmt::Debug for RenderedEmail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderedEmail")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// The site's frontend without trailing slashes: the base of every link.
fn base(site: &Site) -> &str {
    site.frontend_url.trim_end_matches('/')
}

/// The base of a token link: the hosted pages when they are on, else the site's frontend.
fn link_base<'a>(site: &'a Site, hosted: Option<&'a str>) -> &'a str {
    hosted.map_or_else(|| base(site), |h| h.trim_end_matches('/'))
}

/// Human wording for a lifetime in seconds ("24 hours", "1 hour", "30 minutes").
pub fn describe_duration(seconds: i64) -> String {
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    if seconds % 86_400 == 0 && seconds >= 86_400 * 2 {
        plural(seconds / 86_400, "day")
    } else if seconds % 3_600 == 0 {
        plural(seconds / 3_600, "hour")
    } else if seconds % 60 == 0 {
        plural(seconds / 60, "minute")
    } else {
        plural(seconds, "second")
    }
}

fn layout(
    site: &Site,
    heading: &str,
    paragraphs: &[String],
    action: Option<(&str, &str)>,
) -> String {
    let name = html_escape(&site.name);
    let mut html = format!(
        "<!doctype html><html><body style=\"font-family:sans-serif\"><h2>{}</h2>",
        html_escape(heading)
    );
    for p in paragraphs {
        html.push_str(&format!("<p>{p}</p>"));
    }
    if let Some((label, url)) = action {
        let url = html_escape(url);
        html.push_str(&format!(
            "<p><a href=\"{url}\">{}</a></p><p>Or open this link: {url}</p>",
            html_escape(label)
        ));
    }
    html.push_str(&format!("<p>— {name}</p></body></html>"));
    html
}

/// The verification email (register, invite, admin creation, resend). With `hosted`
/// (`HOSTED_PAGES_URL`, decision 80) the link goes to Aegis's own page; otherwise, with
/// `link_base` (`VERIFICATION_LINK_BASE`, decision 26) to that central page, carrying the site.
pub fn verification(
    site: &Site,
    to: &str,
    token: &str,
    link_base: Option<&str>,
    hosted: Option<&str>,
) -> RenderedEmail {
    let link = match (hosted, link_base) {
        (Some(h), _) => format!("{}/verify-email?token={token}", h.trim_end_matches('/')),
        (None, Some(b)) => format!(
            "{}/verify-email?token={token}&site_id={}",
            b.trim_end_matches('/'),
            site.id
        ),
        (None, None) => format!("{}/verify-email?token={token}", base(site)),
    };
    let name = html_escape(&site.name);
    RenderedEmail {
        kind: EmailKind::Verification,
        to: to.to_owned(),
        subject: format!("Verify your email for {}", site.name),
        text: format!(
            "Welcome to {}!\n\nVerify your email address by opening this link:\n{link}\n\n\
             The link expires in 24 hours. If you did not sign up, ignore this email.\n",
            site.name
        ),
        html: layout(
            site,
            &format!("Verify your email for {}", site.name),
            &[
                format!("Welcome to {name}! Please verify your email address."),
                "The link expires in 24 hours. If you did not sign up, ignore this email.".into(),
            ],
            Some(("Verify email", &link)),
        ),
    }
}

/// Sent when someone registers with an address that already has an account: the response does not
/// tell them apart, the owner of the address is told. With `hosted`, the forgot-password link goes
/// to Aegis's own page for the site; sign-in stays on the site's frontend.
pub fn sign_in_attempt(site: &Site, to: &str, hosted: Option<&str>) -> RenderedEmail {
    let login = format!("{}/login", base(site));
    let forgot = match hosted {
        Some(h) => format!(
            "{}/forgot-password?site_id={}",
            h.trim_end_matches('/'),
            site.id
        ),
        None => format!("{}/forgot-password", base(site)),
    };
    let name = html_escape(&site.name);
    RenderedEmail {
        kind: EmailKind::SignInAttempt,
        to: to.to_owned(),
        subject: format!("Sign-in attempt for {}", site.name),
        text: format!(
            "Someone tried to create an account on {} with this email address, which already has \
             one.\n\nSign in: {login}\nForgot your password? {forgot}\n\nIf this was not you, you can \
             ignore this email.\n",
            site.name
        ),
        html: layout(
            site,
            &format!("Sign-in attempt for {}", site.name),
            &[
                format!(
                    "Someone tried to create an account on {name} with this email address, which \
                     already has one."
                ),
                format!(
                    "<a href=\"{}\">Sign in</a> or <a href=\"{}\">reset your password</a>. If this \
                     was not you, you can ignore this email.",
                    html_escape(&login),
                    html_escape(&forgot)
                ),
            ],
            None,
        ),
    }
}

/// The password-reset email; the link goes to the hosted page when `hosted` is given.
pub fn password_reset(
    site: &Site,
    to: &str,
    token: &str,
    lifetime: i64,
    hosted: Option<&str>,
) -> RenderedEmail {
    let link = format!("{}/reset-password?token={token}", link_base(site, hosted));
    let expiry = describe_duration(lifetime);
    RenderedEmail {
        kind: EmailKind::PasswordReset,
        to: to.to_owned(),
        subject: format!("Reset your password for {}", site.name),
        text: format!(
            "Reset your password for {} by opening this link:\n{link}\n\nThe link expires in \
             {expiry}. If you did not ask for this, ignore this email.\n",
            site.name
        ),
        html: layout(
            site,
            &format!("Reset your password for {}", site.name),
            &[format!(
                "The link expires in {expiry}. If you did not ask for this, ignore this email."
            )],
            Some(("Reset password", &link)),
        ),
    }
}

/// The email-change confirmation, sent to the new address. States the real expiry (decision 24).
/// The link goes to the hosted page when `hosted` is given.
pub fn email_change(
    site: &Site,
    to: &str,
    token: &str,
    lifetime: i64,
    hosted: Option<&str>,
) -> RenderedEmail {
    let link = format!(
        "{}/confirm-email-change?token={token}",
        link_base(site, hosted)
    );
    let expiry = describe_duration(lifetime);
    RenderedEmail {
        kind: EmailKind::EmailChange,
        to: to.to_owned(),
        subject: format!("Confirm your email change for {}", site.name),
        text: format!(
            "Confirm that you want to use this address for your account on {} by opening this \
             link:\n{link}\n\nThe link expires in {expiry}. If you did not ask for this, ignore this \
             email.\n",
            site.name
        ),
        html: layout(
            site,
            &format!("Confirm your email change for {}", site.name),
            &[format!(
                "Confirm that you want to use this address for your account. The link expires in \
                 {expiry}. If you did not ask for this, ignore this email."
            )],
            Some(("Confirm email change", &link)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::RandomSecretGenerator;
    use crate::site::tests::new_site;

    fn site(name: &str, frontend: &str) -> Site {
        let mut s = Site::create(new_site(None), 1, &RandomSecretGenerator);
        s.name = name.into();
        s.frontend_url = frontend.into();
        s
    }

    #[test]
    fn verification_links_and_subjects_follow_the_contract() {
        let s = site("Acme", "https://app.acme.com//");
        let m = verification(&s, "u@acme.com", "TOKEN", None, None);
        assert_eq!(m.subject, "Verify your email for Acme");
        assert!(
            m.text
                .contains("https://app.acme.com/verify-email?token=TOKEN")
        );
        assert!(
            m.html
                .contains("https://app.acme.com/verify-email?token=TOKEN")
        );
        let central = verification(
            &s,
            "u@acme.com",
            "TOKEN",
            Some("https://auth.example.com/"),
            None,
        );
        assert!(central.text.contains(&format!(
            "https://auth.example.com/verify-email?token=TOKEN&site_id={}",
            s.id
        )));
        assert!(central.html.contains("&amp;site_id="));
    }

    #[test]
    fn the_site_name_is_escaped_in_html() {
        let s = site("<script>alert(1)</script>", "https://x.com");
        for m in [
            verification(&s, "a@b.co", "t", None, None),
            sign_in_attempt(&s, "a@b.co", None),
            password_reset(&s, "a@b.co", "t", 3600, None),
            email_change(&s, "a@b.co", "t", 3600, None),
        ] {
            assert!(!m.html.contains("<script>"), "{:?}", m.kind);
            assert!(m.html.contains("&lt;script&gt;"));
        }
    }

    #[test]
    fn other_links_and_subjects() {
        let s = site("Acme", "https://app.acme.com/");
        let a = sign_in_attempt(&s, "As.Typed@acme.com", None);
        assert_eq!(
            (a.subject.as_str(), a.to.as_str()),
            ("Sign-in attempt for Acme", "As.Typed@acme.com")
        );
        assert!(
            a.text.contains("https://app.acme.com/login")
                && a.text.contains("https://app.acme.com/forgot-password")
        );
        let r = password_reset(&s, "u@acme.com", "RT", 3600, None);
        assert_eq!(r.subject, "Reset your password for Acme");
        assert!(
            r.text
                .contains("https://app.acme.com/reset-password?token=RT")
                && r.text.contains("1 hour")
        );
        let c = email_change(&s, "new@acme.com", "CT", 7200, None);
        assert_eq!(c.subject, "Confirm your email change for Acme");
        assert!(
            c.text
                .contains("https://app.acme.com/confirm-email-change?token=CT")
                && c.text.contains("2 hours")
        );
    }

    #[test]
    fn hosted_pages_take_every_link_but_sign_in() {
        let s = site("Acme", "https://app.acme.com/");
        let hosted = Some("https://auth.example.com/");
        let v = verification(
            &s,
            "u@acme.com",
            "VT",
            Some("https://central.example.com"),
            hosted,
        );
        assert!(
            v.text
                .contains("https://auth.example.com/verify-email?token=VT\n")
        );
        let r = password_reset(&s, "u@acme.com", "RT", 3600, hosted);
        assert!(
            r.text
                .contains("https://auth.example.com/reset-password?token=RT\n")
        );
        let c = email_change(&s, "n@acme.com", "CT", 3600, hosted);
        assert!(
            c.text
                .contains("https://auth.example.com/confirm-email-change?token=CT\n")
        );
        let a = sign_in_attempt(&s, "u@acme.com", hosted);
        assert!(a.text.contains("Sign in: https://app.acme.com/login\n"));
        assert!(a.text.contains(&format!(
            "https://auth.example.com/forgot-password?site_id={}\n",
            s.id
        )));
        assert!(a.html.contains(&format!(
            "https://auth.example.com/forgot-password?site_id={}\"",
            s.id
        )));
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(describe_duration(3600), "1 hour");
        assert_eq!(describe_duration(86_400), "24 hours");
        assert_eq!(describe_duration(172_800), "2 days");
        assert_eq!(describe_duration(1800), "30 minutes");
        assert_eq!(describe_duration(45), "45 seconds");
    }
}
