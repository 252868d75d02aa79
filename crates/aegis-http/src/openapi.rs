//! The OpenAPI 3.1 document of the API, generated from the handlers' `#[utoipa::path]`
//! annotations and the `aegis-api-types` bodies, served at `GET /api/openapi.json` with a Swagger
//! UI at `/api/docs`.
//!
//! The annotations hold what is particular to a route: its success answer and the errors only it
//! gives. [`Common`] adds what follows from a route's shape, so it is written once: the 401 of
//! each credential, the 400/413/415 of a JSON body, and the 503 of an outage.

use std::collections::{BTreeMap, HashMap};

use actix_web::{HttpResponse, web};
use serde_json::json;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, RefOr, Server};
use utoipa::{Modify, OpenApi, ToResponse};

use crate::routes::auth::handlers as auth;
use crate::routes::sites::handlers as sites;
use crate::routes::users::handlers as users;

/// The security scheme names the annotations use.
const MASTER_KEY: &str = "master_key";
const TENANT_KEY: &str = "tenant_key";
const BEARER: &str = "bearer";

/// The API, as the handlers' annotations describe it.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Aegis",
        description = "Multi-tenant authentication: sites, users, sessions and the emails between \
                       them. Errors are `{\"error\": …}`, with `details` on validation errors and a \
                       `code` on some conflicts. See docs/api.md for the flows."
    ),
    paths(
        crate::routes::health::health,
        crate::routes::health::ready,
        auth::register,
        auth::invite_user,
        auth::login,
        auth::logout,
        auth::refresh,
        auth::me,
        auth::verify_email,
        auth::check_verification_token,
        auth::change_password,
        auth::request_password_reset,
        auth::reset_password,
        auth::request_email_change,
        auth::confirm_email_change,
        sites::create,
        sites::list,
        sites::get_by_domain,
        sites::get,
        sites::update,
        sites::delete,
        users::list_site_users,
        users::list_domain_users,
        users::get_site_user,
        users::admin_register,
        users::admin_register_user,
        users::admin_list_users,
        users::delete_user,
        users::patch_user,
        users::resend_verification,
        users::cleanup_expired_tokens,
        users::deliver_pending_webhooks,
    ),
    components(responses(TooManyRequests, SiteDeletionConflict, UserDeletionConflict)),
    modifiers(&Common),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "auth", description = "Registration, verification, sessions, passwords and email changes"),
        (name = "sites", description = "Sites (tenants), managed with the master key"),
        (name = "users", description = "User administration"),
        (name = "maintenance", description = "Sweeps an operator may run now rather than wait for"),
    )
)]
pub struct ApiDoc;

/// The generated document, made once: every worker's app asks for it twice (its routes' `Allow`
/// and the served copy).
static API_DOC: std::sync::LazyLock<Document> = std::sync::LazyLock::new(ApiDoc::openapi);

/// The document for the API mounted under `prefix` (empty for the root).
pub fn document(prefix: &str, version: &str) -> Document {
    let mut doc = API_DOC.clone();
    doc.info.version = version.to_owned();
    doc.servers = Some(vec![Server::new(if prefix.is_empty() {
        "/"
    } else {
        prefix
    })]);
    doc
}

/// `Allow` for each route pattern under `prefix`: the documented methods, with `HEAD` beside a
/// `GET` and `OPTIONS` always, so an `OPTIONS` answer tells the truth about its route.
pub fn allowed_methods(prefix: &str) -> HashMap<String, String> {
    API_DOC
        .paths
        .paths
        .iter()
        .map(|(path, item)| {
            let mut methods: Vec<&str> = operations(item).map(|(m, _)| method_name(m)).collect();
            if methods.contains(&"GET") {
                methods.push("HEAD");
            }
            methods.push("OPTIONS");
            (format!("{prefix}{path}"), methods.join(", "))
        })
        .collect()
}

/// The operations of one path, with their methods.
pub fn operations(
    item: &utoipa::openapi::PathItem,
) -> impl Iterator<Item = (HttpMethod, &Operation)> {
    [
        (HttpMethod::Get, &item.get),
        (HttpMethod::Post, &item.post),
        (HttpMethod::Put, &item.put),
        (HttpMethod::Patch, &item.patch),
        (HttpMethod::Delete, &item.delete),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.as_ref().map(|op| (method, op)))
}

/// The HTTP name of a method.
pub fn method_name(method: HttpMethod) -> &'static str {
    match method {
        HttpMethod::Get => "GET",
        HttpMethod::Post => "POST",
        HttpMethod::Put => "PUT",
        HttpMethod::Patch => "PATCH",
        HttpMethod::Delete => "DELETE",
        HttpMethod::Options => "OPTIONS",
        HttpMethod::Head => "HEAD",
        HttpMethod::Trace => "TRACE",
    }
}

/// Registers `GET /api/openapi.json` and the Swagger UI at `/api/docs` for the API mounted under
/// `prefix`.
pub fn configure(cfg: &mut web::ServiceConfig, prefix: &str, version: &str) {
    let doc = document(prefix, version);
    let json = web::Data::new(Served {
        json: serde_json::to_string(&doc).unwrap_or_default(),
        docs: format!("{prefix}/api/docs/"),
    });
    cfg.app_data(json)
        .service(web::resource("/api/openapi.json").route(web::get().to(serve_json)))
        .service(web::resource("/api/docs").route(web::get().to(docs_redirect)))
        .service(
            utoipa_swagger_ui::SwaggerUi::new("/api/docs/{_:.*}")
                .url(format!("{prefix}/api/openapi.json"), doc),
        );
}

/// The rendered document and where the UI lives, made once when the app is built.
struct Served {
    json: String,
    docs: String,
}

async fn serve_json(served: web::Data<Served>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(served.json.clone())
}

/// `/api/docs` without the slash: the UI's pages are relative to `/api/docs/`.
async fn docs_redirect(served: web::Data<Served>) -> HttpResponse {
    HttpResponse::Found()
        .insert_header(("Location", served.docs.as_str()))
        .finish()
}

/// The error body with one example.
fn error_content(example: serde_json::Value) -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
            "ErrorBody",
        ))))
        .example(Some(example))
        .build()
}

fn error_response(description: &str, example: serde_json::Value) -> ResponseBuilder {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", error_content(example))
}

fn integer_header(description: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
        .description(Some(description))
        .build()
}

/// 429 from a rate limit, with the headers that say when to come back.
pub struct TooManyRequests;

impl<'r> ToResponse<'r> for TooManyRequests {
    fn response() -> (&'r str, RefOr<Response>) {
        let response = error_response(
            "Over a rate limit; the body names the limit",
            json!({"error": "Too many requests: 5 per 1 minute"}),
        )
        .header(
            "Retry-After",
            integer_header("Seconds until a retry may succeed"),
        )
        .header(
            "X-RateLimit-Limit",
            integer_header("Requests the limit allows per window"),
        )
        .header(
            "X-RateLimit-Remaining",
            integer_header("Requests left in the window"),
        )
        .header(
            "X-RateLimit-Reset",
            integer_header("When the window resets (Unix seconds)"),
        )
        .build();
        ("TooManyRequests", response.into())
    }
}

/// 409 from deleting a protected site.
pub struct SiteDeletionConflict;

impl<'r> ToResponse<'r> for SiteDeletionConflict {
    fn response() -> (&'r str, RefOr<Response>) {
        let response = error_response(
            "The site is protected (`site_deletion_protected`) or has protected users \
             (`site_has_protected_users`)",
            json!({"error": "This site is protected from deletion", "code": "site_deletion_protected"}),
        )
        .build();
        ("SiteDeletionConflict", response.into())
    }
}

/// 409 from deleting a protected user.
pub struct UserDeletionConflict;

impl<'r> ToResponse<'r> for UserDeletionConflict {
    fn response() -> (&'r str, RefOr<Response>) {
        let response = error_response(
            "The user is protected (`user_deletion_protected`), their site is \
             (`site_deletion_protected`), or they are the site's last admin (`last_site_admin`)",
            json!({"error": "User is protected from deletion", "code": "user_deletion_protected"}),
        )
        .build();
        ("UserDeletionConflict", response.into())
    }
}

/// Adds the security schemes, and to each operation the answers that follow from its shape.
struct Common;

impl Modify for Common {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            MASTER_KEY,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "The operator's master key (`MASTER_API_KEY`)",
            ))),
        );
        components.add_security_scheme(
            TENANT_KEY,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Tenant-Api-Key",
                "The site's tenant key, for the site the request names",
            ))),
        );
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        for item in doc.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                add_common_responses(op);
            }
        }
    }
}

/// The credential an operation takes, by its security scheme name.
fn scheme_of(op: &Operation) -> Option<String> {
    let security = serde_json::to_value(op.security.as_ref()?).ok()?;
    security
        .as_array()?
        .first()?
        .as_object()?
        .keys()
        .next()
        .cloned()
}

fn add_common_responses(op: &mut Operation) {
    let scheme = scheme_of(op);
    // A body the route reads leniently (logout's) is never refused, only limited in size.
    let body = op.request_body.as_ref().map(|body| match body {
        RefOr::T(body) => matches!(body.required, Some(utoipa::openapi::Required::True)),
        RefOr::Ref(_) => true,
    });
    let responses: &mut BTreeMap<String, RefOr<Response>> = &mut op.responses.responses;
    let mut add = |status: &str, response: ResponseBuilder| {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| response.build().into());
    };
    match scheme.as_deref() {
        Some(MASTER_KEY) => {
            add(
                "401",
                error_response(
                    "No or a wrong `X-API-Key`",
                    json!({"error": "Invalid API key"}),
                ),
            );
            add(
                "500",
                error_response(
                    "`MASTER_API_KEY` is not set, so no operator request can be authenticated",
                    json!({"error": "Master API key not configured"}),
                ),
            );
        }
        Some(TENANT_KEY) => add(
            "401",
            error_response(
                "The tenant gate refused the request: no key, a wrong key, an unknown site or \
                 a body that names none. Every refusal is this same answer.",
                json!({"error": "Invalid or missing tenant API key"}),
            ),
        ),
        Some(BEARER) => add(
            "401",
            error_response(
                "No bearer token, or one that is unknown, expired or revoked",
                json!({"error": "Invalid or expired token"}),
            ),
        ),
        _ => {}
    }
    if body == Some(true) {
        add(
            "400",
            error_response(
                "The body is not valid JSON, or a field is refused (`details` names each field)",
                json!({"error": "Validation error", "details": {"email": ["Not a valid email address."]}}),
            ),
        );
    }
    // The tenant gate reads the body for its `site_id`, whatever the route.
    if body.is_some() || scheme.as_deref() == Some(TENANT_KEY) {
        add(
            "413",
            error_response(
                "The body is larger than `MAX_CONTENT_LENGTH`",
                json!({"error": "Request body too large"}),
            ),
        );
    }
    // Behind the tenant gate a body that is not JSON names no site: the gate's 401.
    if body == Some(true) && scheme.as_deref() != Some(TENANT_KEY) {
        add(
            "415",
            error_response(
                "The body is not `application/json`",
                json!({"error": "Content-Type must be application/json"}),
            ),
        );
    }
    add(
        "503",
        error_response(
            "The database is unreachable or the password hasher is saturated; retry after \
             `Retry-After` seconds",
            json!({"error": "Service temporarily unavailable"}),
        )
        .header(
            "Retry-After",
            integer_header("Seconds to wait before retrying"),
        ),
    );
}
