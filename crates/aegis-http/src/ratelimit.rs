//! Rate limits, applied as `aegis_domain::ratelimit` decides them (decisions 5, 11, 22, 23).
//!
//! On login, register, request-password-reset and invite-user the limits run before everything
//! else, including the tenant gate, so the middleware here reads their keys from the
//! unauthenticated body: the site UUID and the address, parsed. The bearer routes that check a
//! password (change-password, request-email-change) are charged by their handlers, per user.
//! Counters live in PostgreSQL, so every instance shares them; one statement per request hits every
//! bucket. Preflights are never limited. If the counter store fails, requests pass (and a warning
//! is logged) rather than every login failing with it; if the database is unreachable, the answer
//! is the 503 the route would give.

use std::future::{Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{Error, HttpMessage as _, HttpRequest, HttpResponse, ResponseError as _, web};
pub use aegis_domain::ratelimit::Limited;
use aegis_domain::ratelimit::{
    Count, Decision, Hit, RateCounters, SiteKey, Subject, decide, hits, refunds,
};
use aegis_domain::user::{Email, User};
use aegis_domain::{Clock, RepoError, UnixTime};
use futures_util::StreamExt as _;
use serde_json::Value;

use crate::client_ip::Clients;
use crate::error::ApiError;
use crate::security::{self, Event, Who};

/// What the limiter needs at run time.
pub struct Limiter {
    /// Where the counts are kept.
    pub counters: Arc<dyn RateCounters>,
    /// The time, for the windows.
    pub clock: Arc<dyn Clock>,
    /// How requests are attributed to clients and accounts.
    pub clients: Arc<Clients>,
    /// `MAX_CONTENT_LENGTH`: the most body the limiter reads for its keys.
    pub max_body_bytes: usize,
}

/// Set by a handler that checked a password, so failures are counted per account and network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginAttempt {
    /// A wrong password (or no such account).
    Failed,
    /// The password matched.
    Succeeded,
}

/// The address of a body's `email` in its normal form, when it is a valid one: every spelling of
/// an address counts against one account (decision 30).
fn parsed_email(value: &Value) -> Option<Email> {
    Email::parse(value.get("email")?.as_str()?).ok()
}

/// A request's charge: what it was counted against and what the counts said.
pub struct Charge {
    route: Limited,
    subject: Subject,
    who: Who,
    hits: Vec<Hit>,
    decision: Decision,
    now: UnixTime,
}

impl Limiter {
    fn subject(&self, req: &HttpRequest, site: SiteKey, email: Option<&Email>) -> (Subject, Who) {
        self.clients.identify(req, site, email)
    }

    /// Counts a request against its buckets. `Err` is the response to send instead of running
    /// the route: 429 over a limit, 503 with the database unreachable. When the counters fail
    /// otherwise, the request passes unlimited (and a warning is logged).
    async fn charge(
        &self,
        route: Limited,
        (subject, who): (Subject, Who),
    ) -> Result<Option<Charge>, HttpResponse> {
        let hits = hits(route, &subject);
        let now = self.clock.now();
        let counts = match self.counters.hit(hits.clone(), now).await {
            Ok(counts) => counts,
            // With the database unreachable the route cannot work either: answer its 503 now.
            Err(RepoError::Unavailable(_)) => return Err(ApiError::Unavailable.error_response()),
            Err(e) => {
                tracing::warn!(error = %e, "rate-limit counters failed; request not limited");
                return Ok(None);
            }
        };
        let decision = decide(&hits, &counts);
        let charge = Charge {
            route,
            subject,
            who,
            hits,
            decision,
            now,
        };
        if let Some(over) = &charge.decision.blocked {
            let kind = charge.decision.blocked_by().unwrap_or("limit");
            security::record(Event::RateLimited, &charge.who, kind);
            crate::metrics::record_rejection(route);
            let message = format!("Too many requests: {}", over.rate.describe());
            let mut response =
                ApiError::ClientOwned(StatusCode::TOO_MANY_REQUESTS, message).error_response();
            set_headers(response.headers_mut(), over, now);
            return Err(response);
        }
        Ok(Some(charge))
    }

    /// Charges a bearer route that checks `user`'s password.
    pub async fn charge_user(
        &self,
        req: &HttpRequest,
        route: Limited,
        user: &User,
    ) -> Result<Option<Charge>, HttpResponse> {
        let site = SiteKey::Site(user.site_id);
        self.charge(route, self.subject(req, site, Some(&user.email)))
            .await
    }

    /// Charges a form post of the hosted pages against `route`'s limits, with the keys the API
    /// route reads from its body (`site_id` and `email`), so both share their buckets.
    pub async fn charge_form(
        &self,
        req: &HttpRequest,
        route: Limited,
        site: SiteKey,
        email: Option<&Email>,
    ) -> Result<Option<Charge>, HttpResponse> {
        self.charge(route, self.subject(req, site, email)).await
    }

    /// After the route ran: refunds, and the failed-login count.
    pub async fn settle(&self, charge: &Charge, status: StatusCode, attempt: Option<LoginAttempt>) {
        let result = if charge.route.refunds(status.as_u16()) {
            self.counters
                .hit(refunds(&charge.hits), charge.now)
                .await
                .map(drop)
        } else {
            match attempt {
                Some(LoginAttempt::Failed) => self.count_failure(charge).await,
                // The read before the route says whether there is anything to clear: a normal
                // login costs no second round trip.
                Some(LoginAttempt::Succeeded)
                    if charge.route == Limited::Login && charge.decision.failures_so_far > 0 =>
                {
                    self.counters.reset(charge.subject.failures().bucket).await
                }
                _ => Ok(()),
            }
        };
        if let Err(e) = result
            && !matches!(e, RepoError::Unavailable(_))
        {
            tracing::warn!(error = %e, "rate-limit counters not updated after the request");
        }
    }

    async fn count_failure(&self, charge: &Charge) -> Result<(), RepoError> {
        let counts = self
            .counters
            .hit(
                vec![Hit {
                    by: 1,
                    ..charge.subject.failures()
                }],
                charge.now,
            )
            .await?;
        if let Some(count) = counts.first()
            && count.hits == count.rate.limit
        {
            security::record(Event::AccountBlocked, &charge.who, charge.route.name());
        }
        Ok(())
    }
}

/// Runs `route`, a bearer route that checks `user`'s password, under its limits: per user, per
/// client network, and the failed-login bound, which its wrong passwords count toward. `run`
/// answers with the response and whether the password matched.
pub async fn password_checked(
    limiter: Option<&Limiter>,
    clients: &Clients,
    req: &HttpRequest,
    route: Limited,
    user: &User,
    run: impl Future<Output = (Result<HttpResponse, ApiError>, Option<LoginAttempt>)>,
) -> Result<HttpResponse, ApiError> {
    let charge = match limiter {
        Some(limiter) => match limiter.charge_user(req, route, user).await {
            Ok(charge) => charge,
            Err(refused) => return Ok(refused),
        },
        None => None,
    };
    let (result, attempt) = run.await;
    if attempt == Some(LoginAttempt::Failed) {
        let who = clients.who(req, SiteKey::Site(user.site_id), Some(&user.email));
        security::record(Event::PasswordCheckFailed, &who, route.name());
    }
    let mut response = match result {
        Ok(response) => response,
        Err(e) => e.error_response(),
    };
    if let (Some(limiter), Some(charge)) = (limiter, charge) {
        limiter.settle(&charge, response.status(), attempt).await;
        charge.set_headers(response.headers_mut());
    }
    Ok(response)
}

impl Charge {
    /// Writes the rate-limit headers of the counter the response reports.
    pub fn set_headers(&self, headers: &mut HeaderMap) {
        if let Some(count) = &self.decision.reported {
            set_headers(headers, count, self.now);
        }
    }
}

fn set_headers(headers: &mut HeaderMap, count: &Count, now: UnixTime) {
    let reset = count.reset_at();
    for (name, value) in [
        ("x-ratelimit-limit", count.rate.limit.to_string()),
        ("x-ratelimit-remaining", count.remaining().to_string()),
        ("x-ratelimit-reset", reset.to_string()),
        ("retry-after", (reset - now).max(0).to_string()),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}

/// The middleware, wrapped around one limited resource.
#[derive(Clone, Copy)]
pub struct RateLimit(pub Limited);

impl<S, B> Transform<S, ServiceRequest> for RateLimit
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = RateLimitMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RateLimitMiddleware {
            service: Rc::new(service),
            route: self.0,
        }))
    }
}

/// The rate-limit middleware around one limited route.
pub struct RateLimitMiddleware<S> {
    service: Rc<S>,
    route: Limited,
}

impl<S, B> Service<ServiceRequest> for RateLimitMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        let service = self.service.clone();
        let route = self.route;
        Box::pin(async move {
            let limiter = req.app_data::<web::Data<Limiter>>().cloned();
            // Only the limited method (POST) counts: a preflight or a wrong method is not an attempt.
            let Some(limiter) = limiter.filter(|_| req.method() == Method::POST) else {
                return service
                    .call(req)
                    .await
                    .map(ServiceResponse::map_into_left_body);
            };
            let max = limiter.max_body_bytes;

            // Read the body for the keys, then hand it on untouched. A body declared too large is
            // left for the handler's 413; one that turns out too large is answered here.
            let declared = req
                .headers()
                .get(actix_web::http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<usize>().ok());
            let mut body = web::BytesMut::new();
            if declared.is_none_or(|n| n <= max) {
                let mut payload = req.take_payload();
                while let Some(chunk) = payload.next().await {
                    let Ok(chunk) = chunk else { break };
                    if body.len() + chunk.len() > max {
                        let response = ApiError::Client(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "Request body too large",
                        )
                        .error_response();
                        return Ok(req.into_response(response).map_into_right_body());
                    }
                    body.extend_from_slice(&chunk);
                }
                let (_, mut restored) = actix_http::h1::Payload::create(true);
                restored.unread_data(body.clone().freeze());
                req.set_payload(restored.into());
            }

            let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let site = SiteKey::parse(value.get("site_id").and_then(Value::as_str));
            let email = parsed_email(&value);
            let subject = limiter.subject(req.request(), site, email.as_ref());
            let charge = match limiter.charge(route, subject).await {
                Ok(charge) => charge,
                Err(response) => return Ok(req.into_response(response).map_into_right_body()),
            };
            let mut res = service.call(req).await?;
            if let Some(charge) = charge {
                let attempt = res.response().extensions().get::<LoginAttempt>().copied();
                limiter.settle(&charge, res.status(), attempt).await;
                charge.set_headers(res.headers_mut());
            }
            Ok(res.map_into_left_body())
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_valid_addresses_name_an_account() {
        assert_eq!(
            parsed_email(&json!({"email": "Mixed@Example.com"})).map(|e| e.to_string()),
            Some("mixed@example.com".to_owned())
        );
        for bad in [
            json!({}),
            json!({"email": 5}),
            json!({"email": " a@b.co"}),
            json!({"email": "\"q\"@b.co"}),
            json!(null),
        ] {
            assert_eq!(parsed_email(&bad), None, "{bad}");
        }
    }

    #[test]
    fn every_spelling_of_an_address_is_one_account() {
        for spelling in [
            "jos\u{e9}@b\u{fc}cher.de",
            "jose\u{301}@bu\u{308}cher.de",
            "JOS\u{c9}@B\u{dc}CHER.DE",
            "jos\u{e9}@xn--bcher-kva.de",
            "JOSE\u{301}@XN--BCHER-KVA.DE",
        ] {
            assert_eq!(
                parsed_email(&json!({ "email": spelling })).map(Email::into_string),
                Some("jos\u{e9}@xn--bcher-kva.de".to_owned()),
                "{spelling:?}"
            );
        }
    }
}
