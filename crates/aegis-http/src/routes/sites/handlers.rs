use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use aegis_api_types::{
    CreateSiteRequest, ErrorBody, Message, SiteAdmin, SitePublic, UpdateSiteRequest,
};
use aegis_domain::SiteId;

use super::dto;
use crate::error::ApiError;
use crate::error_map::SITE_NOT_FOUND;
use crate::extract::{JsonBody, MasterKey};
use crate::json;
use crate::state::AppState;

/// A path identifier that is not a UUID in an accepted form is simply an unknown site.
fn site_id(raw: &str) -> Result<SiteId, ApiError> {
    SiteId::parse(raw).ok_or(ApiError::not_found(SITE_NOT_FOUND))
}

#[utoipa::path(
    post,
    path = "/api/sites",
    tag = "sites",
    operation_id = "create",
    summary = "Creates a site, with a new tenant key and webhook secret.",
    request_body = CreateSiteRequest,
    responses((status = 201, description = "The new site", body = SiteAdmin)),
    security(("master_key" = []))
)]
pub async fn create(
    _: MasterKey,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let new = dto::new_site(body.0)?;
    let site = state.sites.create(new).await?;
    state.cors.invalidate();
    tracing::info!(site = %site.id, "site created");
    Ok(json::response(StatusCode::CREATED, &dto::site_admin(&site)))
}

#[utoipa::path(
    get,
    path = "/api/sites",
    tag = "sites",
    operation_id = "list",
    summary = "Every site.",
    responses((status = 200, description = "Every site", body = Vec<SiteAdmin>)),
    security(("master_key" = []))
)]
pub async fn list(_: MasterKey, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let sites = state.sites.list().await?;
    let views: Vec<aegis_api_types::SiteAdmin> = sites.iter().map(dto::site_admin).collect();
    Ok(json::response(StatusCode::OK, &views))
}

#[utoipa::path(
    get,
    path = "/api/sites/by-domain",
    tag = "sites",
    operation_id = "get_by_domain",
    summary = "The public view of a site, by domain. Needs no credentials.",
    params(("domain" = String, Query, description = "The site's domain")),
    responses((status = 200, description = "The site", body = SitePublic), (status = 400, description = "No `domain` parameter", body = ErrorBody), (status = 404, description = "Site not found", body = ErrorBody))
)]
pub async fn get_by_domain(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let domain = crate::routes::domain_param(&req)?;
    let site = state
        .sites
        .get_by_domain(&domain)
        .await?
        .ok_or(ApiError::not_found(SITE_NOT_FOUND))?;
    Ok(json::response(StatusCode::OK, &dto::site_public(&site)))
}

#[utoipa::path(
    get,
    path = "/api/sites/{site_id}",
    tag = "sites",
    operation_id = "get",
    summary = "A site.",
    params(("site_id" = String, Path, description = "The site's UUID")),
    responses((status = 200, description = "The site", body = SiteAdmin), (status = 404, description = "Site not found", body = ErrorBody)),
    security(("master_key" = []))
)]
pub async fn get(
    _: MasterKey,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = site_id(&path)?;
    let site = state
        .sites
        .get(id)
        .await?
        .ok_or(ApiError::not_found(SITE_NOT_FOUND))?;
    Ok(json::response(StatusCode::OK, &dto::site_admin(&site)))
}

#[utoipa::path(
    put,
    path = "/api/sites/{site_id}",
    tag = "sites",
    operation_id = "update",
    summary = "Changes the fields present in the body; `null` clears an optional setting.",
    params(("site_id" = String, Path, description = "The site's UUID")),
    request_body = UpdateSiteRequest,
    responses((status = 200, description = "The site", body = SiteAdmin), (status = 404, description = "Site not found", body = ErrorBody)),
    security(("master_key" = []))
)]
pub async fn update(
    _: MasterKey,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    // Body first, then "at least one field", then the site.
    let patch = dto::site_patch(body.0)?;
    if patch.is_empty() {
        return Err(ApiError::bad_request("At least one field must be provided"));
    }
    let id = site_id(&path)?;
    let site = state.sites.update(id, patch).await?;
    state.cors.invalidate();
    tracing::info!(site = %site.id, "site updated");
    Ok(json::response(StatusCode::OK, &dto::site_admin(&site)))
}

#[utoipa::path(
    delete,
    path = "/api/sites/{site_id}",
    tag = "sites",
    operation_id = "delete",
    summary = "Deletes a site and its users.",
    params(("site_id" = String, Path, description = "The site's UUID")),
    responses((status = 200, description = "Deleted", body = Message), (status = 404, description = "Site not found", body = ErrorBody), (status = 409, response = crate::openapi::SiteDeletionConflict)),
    security(("master_key" = []))
)]
pub async fn delete(
    _: MasterKey,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = site_id(&path)?;
    state.sites.delete(id).await?;
    state.cors.invalidate();
    tracing::info!(site = %id, "site deleted");
    Ok(json::response(
        StatusCode::OK,
        &aegis_api_types::Message {
            message: format!("Site {id} deleted successfully"),
        },
    ))
}
