//! Hosted pages (decision 80): the server-rendered pages the links in Aegis's emails open when
//! `HOSTED_PAGES_URL` is set — verify an address (and set a first password), reset a password,
//! confirm an email change, ask for a reset link. They live outside `/api`, are HTML rather than
//! JSON, and reuse the account services the API uses, with the API's validation texts and rate
//! limits.
//!
//! A page finds its site from the link's token (or, for forgot-password, the `site_id` in the
//! link) on the server: no tenant key reaches the browser, and the only places it sends the user
//! are that site's configured URLs. Every response carries a strict Content-Security-Policy (one
//! style sheet from the binary, no script), `X-Frame-Options: DENY`, and, from the scope, `no-store`
//! and `no-referrer`; every form is protected as [`csrf`] describes.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError as _, web};
use aegis_domain::SecretGenerator;
use maud::Markup;
use std::sync::Arc;

use crate::error::ApiError;

pub mod csrf;
mod handlers;
pub mod text;
mod views;

/// The one style sheet, compiled into the binary.
pub const STYLESHEET: &str = include_str!("pages.css");

/// How the pages are set up: their public base URL and the CSRF key.
#[derive(Clone, Debug)]
pub struct PagesConfig {
    /// `HOSTED_PAGES_URL`, when set: its origin is the one form posts must come from.
    pub public_url: Option<String>,
    /// The form-token key, from `SECRET_KEY`.
    pub csrf: csrf::Csrf,
}

impl PagesConfig {
    /// Pages at `public_url` (`HOSTED_PAGES_URL`), their form tokens keyed from `secret`
    /// (`SECRET_KEY`). The CSRF cookie is `Secure` unless the pages are served over plain http.
    pub fn new(secret: &str, public_url: Option<String>) -> Self {
        let secure = public_url
            .as_deref()
            .is_none_or(|u| u.starts_with("https://"));
        Self {
            public_url,
            csrf: csrf::Csrf::new(secret, secure),
        }
    }
}

/// What the handlers share besides the services.
pub struct Pages {
    config: PagesConfig,
    generator: Arc<dyn SecretGenerator>,
    text: &'static text::Text,
}

impl Pages {
    /// The pages of `config`, drawing nonces from `generator`.
    pub fn new(config: PagesConfig, generator: Arc<dyn SecretGenerator>) -> Self {
        Self {
            config,
            generator,
            text: &text::EN,
        }
    }

    /// The origin form posts must come from: that of `HOSTED_PAGES_URL`, else the one the
    /// request was addressed to.
    fn origin(&self, req: &HttpRequest) -> String {
        if let Some(url) = self
            .config
            .public_url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok())
        {
            return url.origin().ascii_serialization();
        }
        let info = req.connection_info();
        format!("{}://{}", info.scheme(), info.host())
    }
}

/// Registers the pages.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/verify-email")
            .route(web::get().to(handlers::verify_email))
            .route(web::post().to(handlers::set_password)),
    )
    .service(
        web::resource("/reset-password")
            .route(web::get().to(handlers::reset_password_form))
            .route(web::post().to(handlers::reset_password)),
    )
    .service(
        web::resource("/confirm-email-change")
            .route(web::get().to(handlers::confirm_email_change_form))
            .route(web::post().to(handlers::confirm_email_change)),
    )
    .service(
        web::resource("/forgot-password")
            .route(web::get().to(handlers::forgot_password_form))
            .route(web::post().to(handlers::forgot_password)),
    )
    .service(web::resource("/assets/pages.css").route(web::get().to(stylesheet)));
}

/// The Content-Security-Policy of every page: nothing but the style sheet, no script, no
/// framing, forms posting only to the pages (and, for a form whose success redirects to the
/// site, to that site's origin: browsers apply `form-action` to the redirect too).
fn csp(redirect_origin: Option<&str>) -> String {
    let mut form_action = "'self'".to_owned();
    if let Some(origin) = redirect_origin {
        form_action.push(' ');
        form_action.push_str(origin);
    }
    format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action {form_action}; \
         frame-ancestors 'none'; base-uri 'none'"
    )
}

/// The origin of a URL, for `form-action`.
fn origin_of(url: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()
        .map(|u| u.origin())
        .filter(url::Origin::is_tuple)
        .map(|o| o.ascii_serialization())
}

/// A page answer with the pages' headers.
fn html(status: StatusCode, markup: Markup, redirect_origin: Option<&str>) -> HttpResponse {
    let mut response = HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(markup.into_string());
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&csp(redirect_origin)) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// A failure of the services as a page: 503 (with `Retry-After`) while the database is
/// unreachable, else 500. The error is logged as the API logs it.
fn failure(pages: &Pages, error: impl Into<ApiError>) -> HttpResponse {
    let api: ApiError = error.into();
    let logged = api.error_response();
    let t = pages.text;
    let (title, body) = if logged.status() == StatusCode::SERVICE_UNAVAILABLE {
        (t.unavailable_title, t.unavailable_body)
    } else {
        (t.failed_title, t.failed_body)
    };
    let mut page = html(
        logged.status(),
        views::message(t, None, title, body, None),
        None,
    );
    if let Some(retry) = logged.headers().get(header::RETRY_AFTER) {
        page.headers_mut()
            .insert(header::RETRY_AFTER, retry.clone());
    }
    page
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, csp(None)))
        .body(STYLESHEET)
}
