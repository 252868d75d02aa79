//! Rate limits on login, register, request-password-reset and invite-user (§8, decisions 5, 11,
//! 22, 23), and the per-account bound on failed logins.
//!
//! Limits run before everything else on those routes, including the tenant gate; the keys come from
//! the unauthenticated body. Counters live in PostgreSQL, so every instance shares them; one
//! statement per request hits every bucket. Invite-user charges only responses that are not 401.
//! Preflights are never limited. If the counter store fails, requests pass (and a warning is logged)
//! rather than every login failing with it; if the database is unreachable, the answer is the 503
//! the route would give.

use std::future::{Ready, ready};
use std::net::IpAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{Error, HttpMessage as _, ResponseError as _, web};
use aegis_domain::Clock;
use aegis_domain::ratelimit::{Count, Hit, Rate, RateCounters};
use aegis_domain::user::Email;
use futures_util::StreamExt as _;
use serde_json::Value;

use crate::app::AppState;
use crate::client_ip::ClientIpPolicy;
use crate::error::ApiError;

/// What the limiter needs at run time.
pub struct Limiter {
    pub counters: Arc<dyn RateCounters>,
    pub clock: Arc<dyn Clock>,
    pub client_ip: ClientIpPolicy,
}

/// Failed logins allowed per account per hour (the ASVS bound); a success clears the count.
pub const FAILED_LOGINS_PER_HOUR: u32 = 100;

/// Which limited route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    Login,
    Register,
    PasswordReset,
    Invite,
}

/// Set by the login handler on its response, so failures are counted per account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginAttempt {
    Failed,
    Succeeded,
}

impl Limited {
    fn name(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Register => "register",
            Self::PasswordReset => "reset",
            Self::Invite => "invite",
        }
    }

    /// (account, site, ip) rates of §8.
    fn rates(self) -> (Rate, Option<Rate>, Option<Rate>) {
        match self {
            Self::Login => (Rate::per_minute(10), None, Some(Rate::per_minute(60))),
            Self::Register => (Rate::per_minute(5), None, Some(Rate::per_hour(20))),
            Self::PasswordReset => (
                Rate::per_minutes(3, 15),
                Some(Rate::per_hour(60)),
                Some(Rate::per_hour(20)),
            ),
            Self::Invite => (Rate::per_minutes(3, 15), Some(Rate::per_hour(100)), None),
        }
    }
}

fn failures_bucket(site: &str, email: &str) -> String {
    format!("login-fail:{site}:{email}")
}

/// The keys of §8, read from the body without authentication: the raw `site_id` string and the
/// `email` in its normal form (decision 30), so that every spelling of one address counts against
/// one account; input that is no address falls back to the trimmed, lowercased text.
fn keys(body: &[u8]) -> (String, String) {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let site = match value.get("site_id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => "unknown-site".to_owned(),
    };
    let email = match value.get("email") {
        Some(Value::String(e)) if !e.trim().is_empty() => Email::parse(e.trim())
            .map(Email::into_string)
            .unwrap_or_else(|_| e.trim().to_lowercase()),
        _ => "unknown-email".to_owned(),
    };
    (site, email)
}

fn hits(route: Limited, site: &str, email: &str, ip: Option<IpAddr>) -> Vec<Hit> {
    let (account, per_site, per_ip) = route.rates();
    let name = route.name();
    let mut hits = vec![Hit {
        bucket: format!("{name}:account:{site}:{email}"),
        rate: account,
        by: 1,
    }];
    if let Some(rate) = per_site {
        hits.push(Hit {
            bucket: format!("{name}:site:{site}"),
            rate,
            by: 1,
        });
    }
    if let (Some(rate), Some(ip)) = (per_ip, ip) {
        hits.push(Hit {
            bucket: format!("{name}:ip:{ip}"),
            rate,
            by: 1,
        });
    }
    if route == Limited::Login {
        hits.push(Hit {
            bucket: failures_bucket(site, email),
            rate: Rate::per_hour(FAILED_LOGINS_PER_HOUR),
            by: 0,
        });
    }
    hits
}

/// Logs a counter failure, except an outage, which the pool reports once.
fn warn_unless_outage(error: &aegis_domain::RepoError, what: &str) {
    if !matches!(error, aegis_domain::RepoError::Unavailable(_)) {
        tracing::warn!(%error, "{what}");
    }
}

/// The counter a response reports: the exceeded one, else the one closest to its limit.
fn reported<'a>(counts: &'a [Count], hits: &[Hit]) -> Option<&'a Count> {
    counts
        .iter()
        .zip(hits)
        .filter(|(_, h)| h.by != 0)
        .map(|(c, _)| c)
        .min_by_key(|c| (c.remaining(), c.reset_at()))
}

fn blocked<'a>(counts: &'a [Count], hits: &[Hit]) -> Option<&'a Count> {
    counts.iter().zip(hits).find_map(|(c, h)| {
        let over = if h.by == 0 {
            c.hits >= c.rate.limit
        } else {
            c.exceeded()
        };
        over.then_some(c)
    })
}

fn set_headers(headers: &mut actix_web::http::header::HeaderMap, count: &Count, now: i64) {
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
            let state = req.app_data::<web::Data<AppState>>().cloned();
            let limiter = state.as_ref().and_then(|s| s.limiter.clone());
            // Only the limited method (POST) counts: a preflight or a wrong method is not an attempt.
            let Some(limiter) = limiter.filter(|_| req.method() == Method::POST) else {
                return service
                    .call(req)
                    .await
                    .map(ServiceResponse::map_into_left_body);
            };
            let max = state.as_ref().map_or(65_536, |s| s.max_body_bytes);

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

            let (site, email) = keys(&body);
            let ip = limiter.client_ip.client_ip(req.request());
            let hits = hits(route, &site, &email, ip);
            let now = limiter.clock.now();
            let counts = match limiter.counters.hit(hits.clone(), now).await {
                Ok(counts) => counts,
                // With the database unreachable the route cannot work either: answer its 503 now.
                Err(aegis_domain::RepoError::Unavailable(_)) => {
                    let response = ApiError::Unavailable.error_response();
                    return Ok(req.into_response(response).map_into_right_body());
                }
                Err(e) => {
                    tracing::warn!(error = %e, "rate-limit counters failed; request not limited");
                    return service
                        .call(req)
                        .await
                        .map(ServiceResponse::map_into_left_body);
                }
            };
            if let Some(over) = blocked(&counts, &hits) {
                let message = format!("Too many requests: {}", over.rate.describe());
                let mut response =
                    ApiError::ClientOwned(StatusCode::TOO_MANY_REQUESTS, message).error_response();
                set_headers(response.headers_mut(), over, now);
                return Ok(req.into_response(response).map_into_right_body());
            }

            let mut res = service.call(req).await?;
            match route {
                Limited::Invite if res.status() == StatusCode::UNAUTHORIZED => {
                    let refunds: Vec<Hit> = hits
                        .iter()
                        .filter(|h| h.by != 0)
                        .map(|h| Hit {
                            by: -1,
                            ..h.clone()
                        })
                        .collect();
                    if let Err(e) = limiter.counters.hit(refunds, now).await {
                        warn_unless_outage(&e, "rate-limit refund failed");
                    }
                }
                Limited::Login => {
                    let attempt = res.response().extensions().get::<LoginAttempt>().copied();
                    // The read above says whether there is anything to clear: a normal login costs
                    // no second round trip.
                    let failures_so_far = counts
                        .iter()
                        .zip(&hits)
                        .find(|(_, h)| h.by == 0)
                        .map_or(0, |(c, _)| c.hits);
                    let bucket = failures_bucket(&site, &email);
                    let result = match attempt {
                        Some(LoginAttempt::Failed) => limiter
                            .counters
                            .hit(
                                vec![Hit {
                                    bucket,
                                    rate: Rate::per_hour(FAILED_LOGINS_PER_HOUR),
                                    by: 1,
                                }],
                                now,
                            )
                            .await
                            .map(drop),
                        Some(LoginAttempt::Succeeded) if failures_so_far > 0 => {
                            limiter.counters.reset(bucket).await
                        }
                        _ => Ok(()),
                    };
                    if let Err(e) = result {
                        warn_unless_outage(&e, "failed-login counter not updated");
                    }
                }
                _ => {}
            }
            if let Some(count) = reported(&counts, &hits) {
                set_headers(res.headers_mut(), count, now);
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
    fn keys_follow_the_reference() {
        assert_eq!(
            keys(br#"{"site_id": "S", "email": "  Mixed@Example.com "}"#),
            ("S".to_owned(), "mixed@example.com".to_owned())
        );
        assert_eq!(
            keys(b"not json"),
            ("unknown-site".to_owned(), "unknown-email".to_owned())
        );
        assert_eq!(
            keys(br#"{"site_id": 1, "email": ""}"#),
            ("unknown-site".to_owned(), "unknown-email".to_owned())
        );
    }

    #[test]
    fn every_spelling_of_an_address_is_one_account() {
        let key = |email: &str| {
            keys(
                json!({"site_id": "S", "email": email})
                    .to_string()
                    .as_bytes(),
            )
            .1
        };
        for spelling in [
            "jos\u{e9}@b\u{fc}cher.de",
            "jose\u{301}@bu\u{308}cher.de",
            "JOS\u{c9}@B\u{dc}CHER.DE",
            " jos\u{e9}@xn--bcher-kva.de ",
            "JOSE\u{301}@XN--BCHER-KVA.DE",
        ] {
            assert_eq!(key(spelling), "jos\u{e9}@xn--bcher-kva.de", "{spelling:?}");
        }
        assert_eq!(key("\"Q\"@X.com"), "\"q\"@x.com");
    }

    #[test]
    fn every_route_has_its_buckets() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let names = |route| -> Vec<String> {
            hits(route, "S", "e", Some(ip))
                .into_iter()
                .map(|h| h.bucket)
                .collect()
        };
        assert_eq!(
            names(Limited::Login),
            ["login:account:S:e", "login:ip:192.0.2.1", "login-fail:S:e"]
        );
        assert_eq!(
            names(Limited::PasswordReset),
            ["reset:account:S:e", "reset:site:S", "reset:ip:192.0.2.1"]
        );
        assert_eq!(
            names(Limited::Invite),
            ["invite:account:S:e", "invite:site:S"]
        );
        assert_eq!(hits(Limited::Register, "S", "e", None).len(), 1);
    }
}
