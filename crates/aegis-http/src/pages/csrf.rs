//! Cross-site request forgery protection for the hosted pages' forms (decision 80), two checks
//! that must both pass:
//!
//! - **Where the post comes from.** `Sec-Fetch-Site`, when the browser sends it, must be
//!   `same-origin`; `Origin`, when it names an origin, must be the pages' own; so must `Referer`
//!   when present. The pages send `Referrer-Policy: no-referrer`, under which browsers send
//!   `Origin: null` with a form post, so `null` alone proves nothing either way and the token
//!   decides.
//! - **A token.** A random nonce lives in a `SameSite=Strict`, `HttpOnly` cookie; the form carries
//!   HMAC-SHA256(key, form name, nonce), the key derived from `SECRET_KEY`. A page of another site
//!   can neither read the cookie nor compute the field.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite};
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

/// The cookie holding the nonce.
pub const COOKIE: &str = "aegis_pages_csrf";

/// The forms, each with tokens of its own.
#[derive(Debug, Clone, Copy)]
pub enum Form {
    /// The invited user's set-password form.
    SetPassword,
    /// The reset-password form.
    ResetPassword,
    /// The email-change confirmation.
    ConfirmEmailChange,
    /// The forgot-password form.
    ForgotPassword,
}

impl Form {
    fn name(self) -> &'static str {
        match self {
            Self::SetPassword => "set-password",
            Self::ResetPassword => "reset-password",
            Self::ConfirmEmailChange => "confirm-email-change",
            Self::ForgotPassword => "forgot-password",
        }
    }
}

/// Why a post was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `Sec-Fetch-Site`, `Origin` or `Referer` names another origin.
    CrossOrigin,
    /// No cookie, no field, or a field that does not match the cookie.
    BadToken,
}

/// The key and the pages' own origin.
#[derive(Clone)]
pub struct Csrf {
    key: Hmac<Sha256>,
    secure: bool,
}

impl std::fmt::Debug for Csrf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Csrf(<redacted>)")
    }
}

/// A nonce as the cookie may carry it: what the secret generator makes (43 URL-safe base64
/// characters), checked loosely so a cookie cannot smuggle anything else into a page.
fn acceptable_nonce(value: &str) -> bool {
    (32..=128).contains(&value.len())
        && value
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

impl Csrf {
    /// Keys derived from the service secret (`SECRET_KEY`), separate from every other key derived
    /// from it; `secure` marks the cookie `Secure` (the pages are served over https).
    pub fn new(secret: &str, secure: bool) -> Self {
        let mut mac =
            <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(b"aegis hosted pages csrf v1")
                .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(secret.as_bytes());
        let derived = mac.finalize().into_bytes();
        Self {
            key: <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(&derived)
                .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length")),
            secure,
        }
    }

    fn field_for(&self, form: Form, nonce: &str) -> String {
        let mut mac = self.key.clone();
        mac.update(form.name().as_bytes());
        mac.update(b"\0");
        mac.update(nonce.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The hidden field for `form`, and the cookie to set when the request had no usable one
    /// (`fresh` is a new random nonce, used then). Other open forms keep working.
    pub fn issue(
        &self,
        req: &HttpRequest,
        form: Form,
        fresh: String,
    ) -> (String, Option<Cookie<'static>>) {
        if let Some(nonce) = req
            .cookie(COOKIE)
            .map(|c| c.value().to_owned())
            .filter(|n| acceptable_nonce(n))
        {
            return (self.field_for(form, &nonce), None);
        }
        let field = self.field_for(form, &fresh);
        let cookie = Cookie::build(COOKIE, fresh)
            .path("/")
            .http_only(true)
            .secure(self.secure)
            .same_site(SameSite::Strict)
            .finish();
        (field, Some(cookie))
    }

    /// Checks a post of `form` carrying `field`; `origin` is the pages' own origin
    /// (`scheme://host[:port]`).
    pub fn check(
        &self,
        req: &HttpRequest,
        form: Form,
        field: Option<&str>,
        origin: &str,
    ) -> Result<(), Refusal> {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        if header("sec-fetch-site").is_some_and(|site| site != "same-origin") {
            return Err(Refusal::CrossOrigin);
        }
        if let Some(from) = header("origin")
            && from != "null"
            && from != origin
        {
            return Err(Refusal::CrossOrigin);
        }
        if let Some(referer) = header("referer")
            && url::Url::parse(referer).map(|u| u.origin().ascii_serialization())
                != Ok(origin.to_owned())
        {
            return Err(Refusal::CrossOrigin);
        }
        let nonce = req
            .cookie(COOKIE)
            .map(|c| c.value().to_owned())
            .filter(|n| acceptable_nonce(n))
            .ok_or(Refusal::BadToken)?;
        let expected = self.field_for(form, &nonce);
        let presented = field.ok_or(Refusal::BadToken)?;
        if aegis_domain::secrets::secret_eq(presented.as_bytes(), expected.as_bytes()) {
            Ok(())
        } else {
            Err(Refusal::BadToken)
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    const ORIGIN: &str = "https://auth.example.com";
    const NONCE: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    fn csrf() -> Csrf {
        Csrf::new("secret", true)
    }

    fn with_cookie(req: TestRequest) -> HttpRequest {
        req.cookie(Cookie::new(COOKIE, NONCE)).to_http_request()
    }

    #[test]
    fn a_field_matches_its_form_and_nonce_only() {
        let c = csrf();
        let (field, cookie) = c.issue(
            &with_cookie(TestRequest::default()),
            Form::ResetPassword,
            "unused".into(),
        );
        assert!(cookie.is_none(), "an existing nonce is kept");
        let req = with_cookie(TestRequest::post().insert_header(("Origin", ORIGIN)));
        assert_eq!(
            c.check(&req, Form::ResetPassword, Some(&field), ORIGIN),
            Ok(())
        );
        assert_eq!(
            c.check(&req, Form::ForgotPassword, Some(&field), ORIGIN),
            Err(Refusal::BadToken)
        );
        assert_eq!(
            Csrf::new("other", true).check(&req, Form::ResetPassword, Some(&field), ORIGIN),
            Err(Refusal::BadToken)
        );
        assert_eq!(
            c.check(&req, Form::ResetPassword, None, ORIGIN),
            Err(Refusal::BadToken)
        );
        let no_cookie = TestRequest::post().to_http_request();
        assert_eq!(
            c.check(&no_cookie, Form::ResetPassword, Some(&field), ORIGIN),
            Err(Refusal::BadToken)
        );
    }

    #[test]
    fn a_fresh_nonce_is_set_as_a_strict_http_only_cookie() {
        let (_, cookie) = csrf().issue(
            &TestRequest::default().to_http_request(),
            Form::SetPassword,
            NONCE.into(),
        );
        let cookie = cookie.unwrap();
        assert_eq!(cookie.value(), NONCE);
        assert_eq!(cookie.same_site(), Some(SameSite::Strict));
        assert_eq!(
            (cookie.http_only(), cookie.secure()),
            (Some(true), Some(true))
        );
    }

    #[test]
    fn other_origins_are_refused_and_null_is_left_to_the_token() {
        let c = csrf();
        let (field, _) = c.issue(
            &with_cookie(TestRequest::default()),
            Form::SetPassword,
            String::new(),
        );
        for (name, value, ok) in [
            ("Origin", "https://evil.example", false),
            ("Origin", "http://auth.example.com", false),
            ("Origin", "null", true),
            ("Sec-Fetch-Site", "cross-site", false),
            ("Sec-Fetch-Site", "same-site", false),
            ("Sec-Fetch-Site", "same-origin", true),
            ("Referer", "https://evil.example/x", false),
            ("Referer", "https://auth.example.com/verify-email", true),
        ] {
            let req = with_cookie(TestRequest::post().insert_header((name, value)));
            let result = c.check(&req, Form::SetPassword, Some(&field), ORIGIN);
            assert_eq!(result.is_ok(), ok, "{name}: {value} gave {result:?}");
            if !ok {
                assert_eq!(result, Err(Refusal::CrossOrigin));
            }
        }
    }
}
