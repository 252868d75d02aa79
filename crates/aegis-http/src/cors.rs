//! CORS (decision 11): allowed origins derived from every site's `frontend_url` plus
//! `CORS_EXTRA_ORIGINS`, or the `CORS_ORIGINS` override; the request's origin echoed with
//! `Vary: Origin`; preflights answered here, never rate-limited, with PATCH among the methods.

use std::collections::{HashMap, HashSet};
use std::future::{Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{ALLOW, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{Error, HttpResponse, web};
use aegis_domain::SiteService;

/// How long the derived origin set is reused before the sites are read again.
pub const CACHE_TTL: Duration = Duration::from_secs(60);

/// `scheme://host[:port]` of a URL, as browsers send it in `Origin`; `None` for anything without a
/// scheme and host.
pub fn origin_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url.trim()).ok()?;
    parsed.host_str()?;
    let origin = parsed.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// Which origins may call from a browser.
pub struct CorsPolicy {
    /// `CORS_ORIGINS`: `Some(None)` for `*`, `Some(Some(set))` for a fixed list.
    fixed: Option<Option<HashSet<String>>>,
    extra: HashSet<String>,
    sites: SiteService,
    cache: Mutex<Option<(Instant, HashSet<String>)>>,
}

impl CorsPolicy {
    /// The policy of `CORS_ORIGINS` and `CORS_EXTRA_ORIGINS`, reading sites through `sites`.
    pub fn new(cors_origins: Option<&str>, extra: &[String], sites: SiteService) -> Self {
        let fixed = cors_origins.map(|v| {
            if v.trim() == "*" {
                None
            } else {
                Some(
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect(),
                )
            }
        });
        Self {
            fixed,
            extra: extra.iter().cloned().collect(),
            sites,
            cache: Mutex::new(None),
        }
    }

    /// Forgets the derived set, so a site change is seen by the next request.
    pub fn invalidate(&self) {
        if let Ok(mut cache) = self.cache.lock() {
            *cache = None;
        }
    }

    /// Whether `origin` may call.
    pub async fn allows(&self, origin: &str) -> bool {
        match &self.fixed {
            Some(None) => return true,
            Some(Some(list)) => return list.contains(origin),
            None => {}
        }
        if self.extra.contains(origin) {
            return true;
        }
        let fresh = self.cache.lock().ok().and_then(|c| {
            c.as_ref()
                .filter(|(at, _)| at.elapsed() < CACHE_TTL)
                .map(|(_, set)| set.contains(origin))
        });
        if let Some(allowed) = fresh {
            return allowed;
        }
        match self.sites.list().await {
            Ok(sites) => {
                let set: HashSet<String> = sites
                    .iter()
                    .filter_map(|s| origin_of(&s.frontend_url))
                    .collect();
                let allowed = set.contains(origin);
                if let Ok(mut cache) = self.cache.lock() {
                    *cache = Some((Instant::now(), set));
                }
                allowed
            }
            Err(e) => {
                // Keep serving the last known set while the database is unreachable (an outage is
                // reported by the pool, once).
                if !matches!(e, aegis_domain::RepoError::Unavailable(_)) {
                    tracing::warn!(error = %e, "CORS origins could not be refreshed; keeping the last set");
                }
                self.cache
                    .lock()
                    .ok()
                    .and_then(|c| c.as_ref().map(|(_, set)| set.contains(origin)))
                    .unwrap_or(false)
            }
        }
    }
}

const ALLOW_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
const ALLOW_HEADERS: &str = "Content-Type, Authorization, X-API-Key, X-Tenant-Api-Key";

fn add_cors_headers(headers: &mut HeaderMap, origin: &HeaderValue, preflight: bool) {
    headers.insert(
        HeaderName::from_static("access-control-allow-origin"),
        origin.clone(),
    );
    headers.append(
        HeaderName::from_static("vary"),
        HeaderValue::from_static("Origin"),
    );
    if preflight {
        for (name, value) in [
            ("access-control-allow-methods", ALLOW_METHODS),
            ("access-control-allow-headers", ALLOW_HEADERS),
            ("access-control-max-age", "600"),
        ] {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
    }
}

/// The CORS middleware, around the whole application. It also answers `OPTIONS`, with `Allow`
/// naming the route's own methods.
pub struct Cors {
    allow: Rc<HashMap<String, HeaderValue>>,
}

impl Cors {
    /// The middleware for the API mounted under `prefix`.
    pub fn new(prefix: &str) -> Self {
        let allow = crate::openapi::allowed_methods(prefix)
            .into_iter()
            .filter_map(|(pattern, methods)| Some((pattern, HeaderValue::from_str(&methods).ok()?)))
            .collect();
        Self {
            allow: Rc::new(allow),
        }
    }
}

/// `Allow` for a route the document does not describe (the document and its UI): read-only.
const READ_ONLY: HeaderValue = HeaderValue::from_static("GET, HEAD, OPTIONS");

impl<S, B> Transform<S, ServiceRequest> for Cors
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = CorsMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(CorsMiddleware {
            service: Rc::new(service),
            allow: self.allow.clone(),
        }))
    }
}

/// The CORS middleware around one service.
pub struct CorsMiddleware<S> {
    service: Rc<S>,
    allow: Rc<HashMap<String, HeaderValue>>,
}

impl<S, B> Service<ServiceRequest> for CorsMiddleware<S>
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
        let allow = self.allow.clone();
        Box::pin(async move {
            // HEAD is a GET without the body, as the reference answers it.
            let head = req.method() == Method::HEAD && req.match_pattern().is_some();
            if head {
                req.head_mut().method = Method::GET;
            }
            let origin = req.headers().get("Origin").cloned();
            let policy = req.app_data::<web::Data<CorsPolicy>>().cloned();
            let allowed = match (&origin, &policy) {
                (Some(origin), Some(policy)) => match origin.to_str() {
                    Ok(o) if !o.is_empty() => policy.allows(o).await,
                    _ => false,
                },
                _ => false,
            };
            // Every OPTIONS request to a known route is answered here: 200, empty, with `Allow`,
            // and the CORS headers when the origin may call. Nothing further runs, so preflights
            // are never rate-limited.
            if let (true, Some(pattern)) = (req.method() == Method::OPTIONS, req.match_pattern()) {
                let methods = allow.get(&pattern).cloned().unwrap_or(READ_ONLY);
                let mut response = HttpResponse::build(StatusCode::OK)
                    .insert_header((ALLOW, methods))
                    .finish();
                if let (true, Some(origin)) = (allowed, &origin) {
                    add_cors_headers(response.headers_mut(), origin, true);
                }
                return Ok(req.into_response(response).map_into_right_body());
            }
            let mut res = service.call(req).await?;
            if let (true, Some(origin)) = (allowed, &origin) {
                add_cors_headers(res.headers_mut(), origin, false);
            }
            if head {
                let (req, response) = res.into_parts();
                let mut empty = HttpResponse::build(response.status()).finish();
                for (name, value) in response.headers() {
                    if name != actix_web::http::header::CONTENT_LENGTH {
                        empty.headers_mut().append(name.clone(), value.clone());
                    }
                }
                return Ok(ServiceResponse::new(req, empty).map_into_right_body());
            }
            Ok(res.map_into_left_body())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_and_port() {
        assert_eq!(
            origin_of("https://app.example.com/login?next=/x").as_deref(),
            Some("https://app.example.com")
        );
        assert_eq!(
            origin_of("http://localhost:3000/").as_deref(),
            Some("http://localhost:3000")
        );
        assert_eq!(
            origin_of("https://example.com:443/").as_deref(),
            Some("https://example.com")
        );
        assert_eq!(origin_of("not a url"), None);
        assert_eq!(origin_of(""), None);
        assert_eq!(origin_of("mailto:a@b.co"), None);
    }
}
