//! The page handlers: each finds its site server-side, runs the account service the API route
//! runs, and answers with a page.

use std::collections::HashMap;

use actix_web::cookie::Cookie;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use aegis_domain::ratelimit::{Limited, SiteKey};
use aegis_domain::service::accounts::{
    EmailChangeError, LinkKind, LinkState, ResetPasswordError, VerifyEmailError,
};
use aegis_domain::site::Site;
use aegis_domain::user::{Email, PlainPassword};
use serde_json::{Map, Value};

use super::csrf::{Form, Refusal};
use super::views::{self, PasswordForm};
use super::{Pages, failure, html, origin_of};
use crate::error::ApiError;
use crate::state::AppState;
use crate::validation::{Rule, Schema};

/// Field errors as the views show them: the form's fields in order, each with its messages.
type FieldList = Vec<(&'static str, Vec<String>)>;

/// The first value of a query parameter.
fn query(req: &HttpRequest, name: &str) -> Option<String> {
    form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A form body's fields, the first value of each.
fn form_fields(body: &[u8]) -> HashMap<String, String> {
    let mut fields = HashMap::new();
    for (k, v) in form_urlencoded::parse(body) {
        fields
            .entry(k.into_owned())
            .or_insert_with(|| v.into_owned());
    }
    fields
}

/// Validates `fields` with the API's schema rules: the same messages, word for word. A field the
/// form did not send at all is missing, as an absent JSON field is.
fn validate(
    fields: &HashMap<String, String>,
    declared: &[&'static str],
    check: impl FnOnce(&mut Schema),
) -> FieldList {
    let body: Map<String, Value> = declared
        .iter()
        .filter_map(|f| {
            fields
                .get(*f)
                .map(|v| ((*f).to_owned(), Value::String(v.clone())))
        })
        .collect();
    let mut schema = match Schema::new(Value::Object(body), declared) {
        Ok(s) => s,
        Err(_) => return Vec::new(),
    };
    check(&mut schema);
    match schema.finish() {
        Err(ApiError::Validation(mut errors)) => declared
            .iter()
            .filter_map(|f| errors.remove(*f).map(|m| (*f, m)))
            .collect(),
        _ => Vec::new(),
    }
}

fn with_cookie(mut response: HttpResponse, cookie: Option<Cookie<'static>>) -> HttpResponse {
    if let Some(cookie) = cookie {
        // Only a cookie that cannot be encoded fails here, and ours always can.
        let _ = response.add_cookie(&cookie);
    }
    response
}

fn see_other(location: &str) -> HttpResponse {
    let mut response = HttpResponse::SeeOther().finish();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn message(
    pages: &Pages,
    status: StatusCode,
    site: Option<&Site>,
    (title, body): (&str, &str),
    link: Option<&str>,
) -> HttpResponse {
    html(
        status,
        views::message(pages.text, site.map(|s| s.name.as_str()), title, body, link),
        None,
    )
}

fn invalid_link(pages: &Pages, site: Option<&Site>) -> HttpResponse {
    let t = pages.text;
    message(
        pages,
        StatusCode::NOT_FOUND,
        site,
        (t.invalid_link_title, t.invalid_link_body),
        None,
    )
}

/// The site of a live token of `kind`, or the page explaining why there is none.
async fn live_site(
    state: &AppState,
    kind: LinkKind,
    token: Option<&str>,
) -> Result<Site, HttpResponse> {
    let pages = &state.pages;
    let t = pages.text;
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Err(invalid_link(pages, None));
    };
    match state.accounts.inspect_link(kind, token).await {
        Ok(LinkState::Live(site)) => Ok(site),
        Ok(LinkState::Expired(site)) => Err(message(
            pages,
            StatusCode::GONE,
            Some(&site),
            (t.expired_link_title, t.expired_link_body),
            None,
        )),
        Ok(LinkState::Used(site)) => Err(message(
            pages,
            StatusCode::GONE,
            Some(&site),
            (t.used_link_title, t.used_link_body),
            None,
        )),
        Ok(LinkState::Unknown) => Err(invalid_link(pages, None)),
        Err(e) => Err(failure(pages, e)),
    }
}

/// What every post of a link's form starts with: the CSRF checks (whose refusal page names the
/// link's site), then the link's site, which must still be live; the site and the token.
async fn link_post(
    req: &HttpRequest,
    state: &AppState,
    form: Form,
    kind: LinkKind,
    fields: &HashMap<String, String>,
) -> Result<(Site, String), HttpResponse> {
    let token = fields.get("token").map(String::as_str);
    let site = async { live_site(state, kind, token).await.ok() };
    if let Some(refused) = csrf_refusal(req, &state.pages, form, fields, site).await {
        return Err(refused);
    }
    let site = live_site(state, kind, token).await?;
    Ok((site, token.unwrap_or_default().to_owned()))
}

/// The `password` field of a set-password or reset form, under the API's rules.
fn new_password(fields: &HashMap<String, String>) -> Result<PlainPassword, FieldList> {
    let mut password = None;
    let errors = validate(fields, &["password"], |s| {
        password = s.required_str("password", &[Rule::PasswordSet]);
    });
    password
        .filter(|_| errors.is_empty())
        .map(PlainPassword::new)
        .ok_or(errors)
}

/// The refusal page of a post that fails the CSRF checks, if it does, naming the site the post is
/// for: `site` is only awaited for a refused post.
async fn csrf_refusal(
    req: &HttpRequest,
    pages: &Pages,
    form: Form,
    fields: &HashMap<String, String>,
    site: impl Future<Output = Option<Site>>,
) -> Option<HttpResponse> {
    let refusal = pages
        .config
        .csrf
        .check(
            req,
            form,
            fields.get("csrf_token").map(String::as_str),
            &pages.origin(req),
        )
        .err()?;
    let reason = match refusal {
        Refusal::CrossOrigin => "cross-origin",
        Refusal::BadToken => "token",
    };
    tracing::info!(reason, "hosted page form refused by the CSRF checks");
    let t = pages.text;
    Some(message(
        pages,
        StatusCode::FORBIDDEN,
        site.await.as_ref(),
        (t.csrf_title, t.csrf_body),
        None,
    ))
}

/// A form page: its CSRF field, and the cookie when the browser has none yet.
fn form_page(
    req: &HttpRequest,
    pages: &Pages,
    form: Form,
    render: impl FnOnce(&str) -> maud::Markup,
    status: StatusCode,
    redirect_origin: Option<&str>,
) -> HttpResponse {
    let (field, cookie) = pages.config.csrf.issue(req, form, pages.generator.token());
    with_cookie(html(status, render(&field), redirect_origin), cookie)
}

fn set_password_page(
    req: &HttpRequest,
    pages: &Pages,
    site: &Site,
    token: &str,
    errors: &FieldList,
) -> HttpResponse {
    let t = pages.text;
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let redirect = origin_of(&site.verification_redirect());
    form_page(
        req,
        pages,
        Form::SetPassword,
        |csrf| {
            views::password_form(
                t,
                &site.name,
                &PasswordForm {
                    title: t.set_password_title,
                    intro: t.set_password_intro,
                    button: t.set_password_button,
                    action: "verify-email",
                },
                token,
                csrf,
                errors,
            )
        },
        status,
        redirect.as_deref(),
    )
}

/// `GET /verify-email?token=…`: verifies, then sends the user to the site; an invited user
/// without a password gets the set-password form first.
pub async fn verify_email(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let pages = &state.pages;
    let token = query(&req, "token");
    let site = match live_site(&state, LinkKind::Verification, token.as_deref()).await {
        Ok(site) => site,
        Err(page) => return page,
    };
    let token = token.unwrap_or_default();
    match state.accounts.verify_email(&site, &token, None).await {
        Ok(verified) => see_other(&verified.redirect_url),
        Err(VerifyEmailError::PasswordRequired) => {
            set_password_page(&req, pages, &site, &token, &Vec::new())
        }
        Err(VerifyEmailError::InvalidToken) => invalid_link(pages, Some(&site)),
        Err(e @ VerifyEmailError::Failure(_)) => failure(pages, e),
    }
}

/// `POST /verify-email`: the set-password form.
pub async fn set_password(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let pages = &state.pages;
    let fields = form_fields(&body);
    let (site, token) = match link_post(
        &req,
        &state,
        Form::SetPassword,
        LinkKind::Verification,
        &fields,
    )
    .await
    {
        Ok(checked) => checked,
        Err(page) => return page,
    };
    let password = match new_password(&fields) {
        Ok(password) => password,
        Err(errors) => return set_password_page(&req, pages, &site, &token, &errors),
    };
    match state
        .accounts
        .verify_email(&site, &token, Some(&password))
        .await
    {
        Ok(verified) => see_other(&verified.redirect_url),
        Err(VerifyEmailError::PasswordRequired | VerifyEmailError::InvalidToken) => {
            invalid_link(pages, Some(&site))
        }
        Err(e @ VerifyEmailError::Failure(_)) => failure(pages, e),
    }
}

fn reset_page(
    req: &HttpRequest,
    pages: &Pages,
    site: &Site,
    token: &str,
    errors: &FieldList,
) -> HttpResponse {
    let t = pages.text;
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    form_page(
        req,
        pages,
        Form::ResetPassword,
        |csrf| {
            views::password_form(
                t,
                &site.name,
                &PasswordForm {
                    title: t.reset_title,
                    intro: t.reset_intro,
                    button: t.reset_button,
                    action: "reset-password",
                },
                token,
                csrf,
                errors,
            )
        },
        status,
        None,
    )
}

/// `GET /reset-password?token=…`: the new-password form.
pub async fn reset_password_form(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let token = query(&req, "token");
    match live_site(&state, LinkKind::PasswordReset, token.as_deref()).await {
        Ok(site) => reset_page(
            &req,
            &state.pages,
            &site,
            &token.unwrap_or_default(),
            &Vec::new(),
        ),
        Err(page) => page,
    }
}

/// `POST /reset-password`: sets the password as `POST /api/auth/reset-password` does.
pub async fn reset_password(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let pages = &state.pages;
    let t = pages.text;
    let fields = form_fields(&body);
    let (site, token) = match link_post(
        &req,
        &state,
        Form::ResetPassword,
        LinkKind::PasswordReset,
        &fields,
    )
    .await
    {
        Ok(checked) => checked,
        Err(page) => return page,
    };
    let password = match new_password(&fields) {
        Ok(password) => password,
        Err(errors) => return reset_page(&req, pages, &site, &token, &errors),
    };
    match state
        .accounts
        .reset_password(&site, &token, &password)
        .await
    {
        Ok(_) => message(
            pages,
            StatusCode::OK,
            Some(&site),
            (t.reset_done_title, t.reset_done_body),
            Some(&site.frontend_url),
        ),
        Err(ResetPasswordError::InvalidToken) => invalid_link(pages, Some(&site)),
        Err(e @ ResetPasswordError::Failure(_)) => failure(pages, e),
    }
}

/// `GET /confirm-email-change?token=…`: a page with one button, so that opening the link (as mail
/// scanners do) changes nothing.
pub async fn confirm_email_change_form(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> HttpResponse {
    let pages = &state.pages;
    let token = query(&req, "token");
    match live_site(&state, LinkKind::EmailChange, token.as_deref()).await {
        Ok(site) => {
            let token = token.unwrap_or_default();
            form_page(
                &req,
                pages,
                Form::ConfirmEmailChange,
                |csrf| views::confirm_form(pages.text, &site.name, &token, csrf),
                StatusCode::OK,
                None,
            )
        }
        Err(page) => page,
    }
}

/// `POST /confirm-email-change`: confirms as `POST /api/auth/confirm-email-change` does.
pub async fn confirm_email_change(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let pages = &state.pages;
    let t = pages.text;
    let fields = form_fields(&body);
    let (site, token) = match link_post(
        &req,
        &state,
        Form::ConfirmEmailChange,
        LinkKind::EmailChange,
        &fields,
    )
    .await
    {
        Ok(checked) => checked,
        Err(page) => return page,
    };
    match state.accounts.confirm_email_change(&token).await {
        Ok(_) => message(
            pages,
            StatusCode::OK,
            Some(&site),
            (t.email_change_done_title, t.email_change_done_body),
            Some(&site.frontend_url),
        ),
        Err(EmailChangeError::EmailInUse) => message(
            pages,
            StatusCode::CONFLICT,
            Some(&site),
            (t.email_in_use_title, t.email_in_use_body),
            None,
        ),
        Err(EmailChangeError::InvalidToken | EmailChangeError::InvalidPassword) => {
            invalid_link(pages, Some(&site))
        }
        Err(e @ EmailChangeError::Failure(_)) => failure(pages, e),
    }
}

/// The site `site_id` names, or the page saying there is none.
async fn named_site(state: &AppState, site_id: Option<&str>) -> Result<Site, HttpResponse> {
    let pages = &state.pages;
    let t = pages.text;
    let unknown = || {
        message(
            pages,
            StatusCode::NOT_FOUND,
            None,
            (t.unknown_site_title, t.unknown_site_body),
            None,
        )
    };
    let SiteKey::Site(id) = SiteKey::parse(site_id) else {
        return Err(unknown());
    };
    match state.sites.get(id).await {
        Ok(Some(site)) => Ok(site),
        Ok(None) => Err(unknown()),
        Err(e) => Err(failure(pages, e)),
    }
}

fn forgot_page(
    req: &HttpRequest,
    pages: &Pages,
    site: &Site,
    email: Option<&str>,
    errors: &FieldList,
) -> HttpResponse {
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let site_id = site.id.to_string();
    form_page(
        req,
        pages,
        Form::ForgotPassword,
        |csrf| views::forgot_form(pages.text, &site.name, &site_id, csrf, email, errors),
        status,
        None,
    )
}

/// `GET /forgot-password?site_id=…`: asks for the address.
pub async fn forgot_password_form(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    match named_site(&state, query(&req, "site_id").as_deref()).await {
        Ok(site) => forgot_page(&req, &state.pages, &site, None, &Vec::new()),
        Err(page) => page,
    }
}

/// `POST /forgot-password`: requests a reset link as `POST /api/auth/request-password-reset`
/// does, under its rate limits (the same buckets), answering the same whether or not the address
/// has an account.
pub async fn forgot_password(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let pages = &state.pages;
    let fields = form_fields(&body);
    let site_id = fields.get("site_id").map(String::as_str);
    let site = async { named_site(&state, site_id).await.ok() };
    if let Some(refused) = csrf_refusal(&req, pages, Form::ForgotPassword, &fields, site).await {
        return refused;
    }
    let limit_email = fields.get("email").and_then(|e| Email::parse(e).ok());
    let charge = match &state.limiter {
        Some(limiter) => match limiter
            .charge_form(
                &req,
                Limited::PasswordReset,
                SiteKey::parse(site_id),
                limit_email.as_ref(),
            )
            .await
        {
            Ok(charge) => charge.map(|c| (limiter.clone(), c)),
            Err(refused) => {
                let site = named_site(&state, site_id).await.ok();
                return limited_page(pages, &refused, site.as_ref());
            }
        },
        None => None,
    };
    let mut response = forgot_password_run(&req, &state, site_id, &fields).await;
    if let Some((limiter, charge)) = charge {
        limiter.settle(&charge, response.status(), None).await;
        charge.set_headers(response.headers_mut());
    }
    response
}

async fn forgot_password_run(
    req: &HttpRequest,
    state: &AppState,
    site_id: Option<&str>,
    fields: &HashMap<String, String>,
) -> HttpResponse {
    let pages = &state.pages;
    let t = pages.text;
    let site = match named_site(state, site_id).await {
        Ok(site) => site,
        Err(page) => return page,
    };
    let mut email = None;
    let errors = validate(fields, &["email"], |s| {
        email = s.required_email("email");
    });
    let Some(email) = email.filter(|_| errors.is_empty()) else {
        let typed = fields.get("email").map(String::as_str);
        return forgot_page(req, pages, &site, typed, &errors);
    };
    match state.accounts.request_password_reset(&site, &email).await {
        Ok(()) => message(
            pages,
            StatusCode::OK,
            Some(&site),
            (t.forgot_done_title, t.forgot_done_body),
            Some(&site.frontend_url),
        ),
        Err(e) => failure(pages, e),
    }
}

/// The page for a post the limiter refused (429, or 503 with the database unreachable), with its
/// rate-limit and `Retry-After` headers.
fn limited_page(pages: &Pages, refused: &HttpResponse, site: Option<&Site>) -> HttpResponse {
    let t = pages.text;
    let status = refused.status();
    let text = if status == StatusCode::TOO_MANY_REQUESTS {
        (t.rate_limited_title, t.rate_limited_body)
    } else {
        (t.unavailable_title, t.unavailable_body)
    };
    let mut page = message(pages, status, site, text, None);
    for (name, value) in refused.headers() {
        if name.as_str().starts_with("x-ratelimit-") || name == header::RETRY_AFTER {
            page.headers_mut().insert(name.clone(), value.clone());
        }
    }
    page
}
