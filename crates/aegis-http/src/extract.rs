//! Extractors: the JSON body and the authentication schemes. A handler's signature shows who may
//! call it and what it reads.

use std::future::{Ready, ready};
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage as _, HttpRequest, web};
use aegis_domain::site::Site;
use aegis_domain::user::{Role, User};
use aegis_domain::{SiteId, secret_eq};
use secrecy::ExposeSecret as _;
use serde_json::Value;

use crate::error::ApiError;
use crate::security::{self, Event, Who};
use crate::state::AppState;
use aegis_domain::ratelimit::SiteKey;

/// A parsed JSON request body, before schema validation.
///
/// - a content type other than `application/json` (or `application/*+json`) is 415;
/// - a body over `MAX_CONTENT_LENGTH` is 413, refused from `Content-Length` before reading;
/// - an empty or malformed body is 400.
#[derive(Debug)]
pub struct JsonBody(pub Value);

fn is_json_content_type(req: &HttpRequest) -> bool {
    match req.mime_type() {
        Ok(Some(mime)) => {
            mime.type_() == "application"
                && (mime.subtype() == "json" || mime.suffix().is_some_and(|s| s == "json"))
        }
        _ => false,
    }
}

/// Reads the body within `MAX_CONTENT_LENGTH`: 413 beyond it (refused from `Content-Length`
/// before reading when declared), 400 when it cannot be read.
fn read_body(
    req: &HttpRequest,
    payload: &mut Payload,
) -> Pin<Box<dyn Future<Output = Result<web::Bytes, ApiError>>>> {
    let limit = req
        .app_data::<web::Data<AppState>>()
        .map_or(65_536, |s| s.max_body_bytes);
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Box::pin(ready(Err(too_large())));
    }
    let bytes = web::Bytes::from_request(req, payload);
    Box::pin(async move {
        bytes.await.map_err(|e| {
            if e.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                ApiError::bad_request("Could not read the request body")
            }
        })
    })
}

impl FromRequest for JsonBody {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        if !is_json_content_type(req) {
            return Box::pin(ready(Err(ApiError::Client(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/json",
            ))));
        }
        let bytes = read_body(req, payload);
        Box::pin(async move {
            serde_json::from_slice(&bytes.await?)
                .map(JsonBody)
                .map_err(|_| ApiError::bad_request("The request body is not valid JSON"))
        })
    }
}

/// An optional JSON object body for routes without a schema (logout): anything that is not a JSON
/// object, including no body at all, reads as an empty object.
#[derive(Debug, Default)]
pub struct LenientJson(pub serde_json::Map<String, Value>);

impl FromRequest for LenientJson {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_json = is_json_content_type(req);
        let bytes = read_body(req, payload);
        Box::pin(async move {
            let bytes = bytes.await?;
            let object = match serde_json::from_slice(&bytes) {
                Ok(Value::Object(map)) if is_json => map,
                _ => serde_json::Map::new(),
            };
            Ok(Self(object))
        })
    }
}

fn too_large() -> ApiError {
    ApiError::Client(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large")
}

/// The operator: `X-API-Key` equal to `MASTER_API_KEY`, compared in constant time.
#[derive(Debug, Clone, Copy)]
pub struct MasterKey;

impl FromRequest for MasterKey {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(check_master_key(req))
    }
}

fn check_master_key(req: &HttpRequest) -> Result<MasterKey, ApiError> {
    let not_configured = ApiError::Client(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Master API key not configured",
    );
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::bug("Internal server error", "application state missing"))?;
    let expected = state.master_api_key.as_ref().ok_or(not_configured)?;
    let rejected = |detail: &str, message: &'static str| {
        security::record(Event::MasterKeyRejected, &state.clients.client(req), detail);
        ApiError::unauthorized(message)
    };
    let presented = req
        .headers()
        .get("X-API-Key")
        .map(|v| v.as_bytes())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| rejected("missing", "Missing X-API-Key header"))?;
    if secret_eq(presented, expected.expose_secret().as_bytes()) {
        Ok(MasterKey)
    } else {
        Err(rejected("mismatch", "Invalid API key"))
    }
}

/// The one body every tenant-gate failure gets (decision 1).
pub const TENANT_GATE_ERROR: &str = "Invalid or missing tenant API key";

fn tenant_denied() -> ApiError {
    ApiError::unauthorized(TENANT_GATE_ERROR)
}

fn state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::bug("Internal server error", "application state missing"))
}

/// Logs each refusal of the tenant gate as a security event, then gives the uniform 401.
/// It keeps the request (a cheap handle) and finds the client only when a request is refused, so
/// an accepted request pays nothing for the log.
struct GateLog(HttpRequest);

impl GateLog {
    fn new(req: &HttpRequest) -> Self {
        Self(req.clone())
    }

    fn denied(&self, raw_site: Option<&str>, detail: &str) -> ApiError {
        let client = self
            .0
            .app_data::<web::Data<AppState>>()
            .map(|s| s.clients.client(&self.0))
            .unwrap_or_default();
        let who = Who {
            site: Some(SiteKey::parse(raw_site)),
            ..client
        };
        security::record(Event::TenantKeyRejected, &who, detail);
        tenant_denied()
    }
}

/// Resolves the site and checks the key in constant time. Every failure is the same 401; a bogus
/// site costs the same comparison as a real one.
async fn authenticate_tenant(
    state: &AppState,
    presented_key: &[u8],
    raw_site_id: &str,
    log: &GateLog,
) -> Result<Site, ApiError> {
    let site = match SiteId::parse(raw_site_id) {
        Some(id) => state.sites.get(id).await.map_err(ApiError::from)?,
        None => None,
    };
    let expected = site.as_ref().map_or("", |s| s.tenant_api_key.as_str());
    let matches = secret_eq(presented_key, expected.as_bytes());
    match site {
        Some(site) if matches && !expected.is_empty() => {
            crate::telemetry::identify(&site.id, None);
            Ok(site)
        }
        Some(_) => Err(log.denied(Some(raw_site_id), "wrong key")),
        None => Err(log.denied(Some(raw_site_id), "no such site")),
    }
}

fn tenant_key(req: &HttpRequest) -> Result<Vec<u8>, ApiError> {
    req.headers()
        .get("X-Tenant-Api-Key")
        .map(|v| v.as_bytes().to_vec())
        .filter(|v| !v.is_empty())
        .ok_or_else(tenant_denied)
}

/// The body of a tenant-gated request as the gate reads it: a JSON object, or `{}` for the falsy
/// values. Anything else cannot name a site, so it is the gate's 401 (decision 10), never a 415 or
/// a 400.
fn gate_body(is_json: bool, bytes: &[u8]) -> Result<serde_json::Map<String, Value>, ApiError> {
    if !is_json {
        return Err(tenant_denied());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(v) if crate::validation::is_falsy(&v) => Ok(serde_json::Map::new()),
        _ => Err(tenant_denied()),
    }
}

/// The tenant gate for routes whose site is the body's `site_id`: the authenticated
/// site, and the parsed body for schema validation, which runs after the gate.
#[derive(Debug)]
pub struct TenantBody {
    /// The site the tenant key authenticated.
    pub site: Site,
    /// The parsed body, for the route's schema.
    pub body: Value,
}

impl FromRequest for TenantBody {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let key = tenant_key(req);
        let state = state(req);
        let is_json = is_json_content_type(req);
        let bytes = read_body(req, payload);
        let log = GateLog::new(req);
        Box::pin(async move {
            let key = key.map_err(|_| log.denied(None, "no key"))?;
            let state = state?;
            let body = gate_body(is_json, &bytes.await?)
                .map_err(|_| log.denied(None, "body names no site"))?;
            let Some(Value::String(raw_site)) = body.get("site_id") else {
                return Err(log.denied(None, "body names no site"));
            };
            let site = authenticate_tenant(&state, &key, raw_site, &log).await?;
            Ok(Self {
                site,
                body: Value::Object(body),
            })
        })
    }
}

/// The tenant gate for routes whose site is the path's `site_id`. A body `site_id`, when sent, must
/// be the same string, or the request is refused (closing a cross-tenant read).
#[derive(Debug)]
pub struct TenantPath {
    /// The site the tenant key authenticated.
    pub site: Site,
}

impl FromRequest for TenantPath {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let key = tenant_key(req);
        let state = state(req);
        let path_site = req.match_info().get("site_id").map(str::to_owned);
        let is_json = is_json_content_type(req);
        let bytes = read_body(req, payload);
        let log = GateLog::new(req);
        Box::pin(async move {
            let key = key.map_err(|_| log.denied(path_site.as_deref(), "no key"))?;
            let state = state?;
            let path_site = path_site.ok_or_else(|| log.denied(None, "path names no site"))?;
            let bytes = bytes.await?;
            if is_json && !bytes.is_empty() {
                let body = gate_body(true, &bytes)
                    .map_err(|_| log.denied(Some(&path_site), "body is not an object"))?;
                match body.get("site_id") {
                    None => {}
                    Some(Value::String(s)) if *s == path_site => {}
                    Some(_) => return Err(log.denied(Some(&path_site), "body names another site")),
                }
            }
            let site = authenticate_tenant(&state, &key, &path_site, &log).await?;
            Ok(Self { site })
        })
    }
}

/// A signed-in user: `Authorization: Bearer <auth token>`. Keeps the presented token for
/// logout.
#[derive(Debug)]
pub struct Bearer {
    /// The user the token belongs to.
    pub user: User,
    /// The token as presented (logout deletes it).
    pub token: String,
}

impl FromRequest for Bearer {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let header = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .map(|v| v.as_bytes().to_vec());
        let state = state(req);
        Box::pin(async move {
            let header = header
                .filter(|h| !h.is_empty())
                .ok_or(ApiError::unauthorized("Missing authorization header"))?;
            let token = header
                .strip_prefix(b"Bearer ")
                .ok_or(ApiError::unauthorized(
                    "Invalid authorization header format",
                ))?;
            let invalid = || ApiError::unauthorized("Invalid or expired token");
            let token = String::from_utf8(token.to_vec()).map_err(|_| invalid())?;
            let user = state?
                .accounts
                .authenticate(&token)
                .await
                .map_err(ApiError::from)?
                .ok_or_else(invalid)?;
            crate::telemetry::identify(&user.site_id, Some(&user.id));
            Ok(Self { user, token })
        })
    }
}

/// A signed-in site admin: a bearer whose user has the `admin` role (403 otherwise).
#[derive(Debug)]
pub struct BearerAdmin(pub Bearer);

impl FromRequest for BearerAdmin {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let bearer = Bearer::from_request(req, payload);
        Box::pin(async move {
            let bearer = bearer.await?;
            if bearer.user.role != Role::Admin {
                return Err(ApiError::Client(
                    StatusCode::FORBIDDEN,
                    "Insufficient permissions",
                ));
            }
            Ok(Self(bearer))
        })
    }
}
