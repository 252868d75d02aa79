//! [`AegisClient`]: one method per route.

use std::fmt;
use std::time::Duration;

use aegis_api_types::{
    AdminRegisterRequest, AdminRegisterUserRequest, ChangePasswordRequest,
    CheckVerificationTokenRequest, CleanupReport, ConfirmEmailChangeRequest, CreateSiteRequest,
    EmailChangeRequest, ErrorBody, Health, InviteUserRequest, LoginRequest, LogoutRequest, Message,
    PasswordResetRequest, PatchUserRequest, RefreshRequest, RegisterRequest, ResetPasswordRequest,
    Session, SiteAdmin, SitePublic, TokenStatus, UpdateSiteRequest, User, Verified,
    VerifyEmailRequest, WebhookSweep,
};
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::ClientError;

/// How long a call may take, from sending the request to reading the whole answer, unless
/// [`AegisClient::with_timeout`] says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Who a call authenticates as.
#[derive(Clone, Copy)]
enum Auth<'a> {
    /// No credentials.
    Public,
    /// `X-API-Key`: the operator's master key.
    Master,
    /// `X-Tenant-Api-Key`: a site backend's key.
    Tenant,
    /// `Authorization: Bearer …`: a signed-in user.
    Bearer(&'a str),
}

/// A typed client for the Aegis HTTP API.
///
/// Built from the base URL the API answers under, which may carry a path prefix when the API is
/// mounted inside another application (`http://host/auth` for `Aegis::configure("/auth")`). The
/// master key and the tenant key are set once with [`Self::with_master_key`] and
/// [`Self::with_tenant_key`] and sent on the routes that take them; bearer tokens are passed per
/// call. A route whose key is not set is called without it, and Aegis refuses it with a 401.
///
/// Cloning is cheap: clones share one connection pool.
#[derive(Clone)]
pub struct AegisClient {
    http: reqwest::Client,
    base: String,
    master_key: Option<String>,
    tenant_key: Option<String>,
    timeout: Duration,
}

impl fmt::Debug for AegisClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AegisClient")
            .field("base", &self.base)
            .field(
                "master_key",
                &self.master_key.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "tenant_key",
                &self.tenant_key.as_ref().map(|_| "<redacted>"),
            )
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl AegisClient {
    /// A client for the API under `base_url` (a trailing `/` is ignored), without credentials.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self::with_http_client(base_url, reqwest::Client::new())
    }

    /// [`Self::new`] on a `reqwest::Client` of your own (proxies, TLS roots, connection limits).
    pub fn with_http_client(base_url: impl Into<String>, http: reqwest::Client) -> Self {
        let mut base = base_url.into();
        while base.ends_with('/') {
            base.pop();
        }
        Self {
            http,
            base,
            master_key: None,
            tenant_key: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Sends `key` as `X-API-Key` on the operator's routes (sites, users, admin maintenance).
    pub fn with_master_key(mut self, key: impl Into<String>) -> Self {
        self.master_key = Some(key.into());
        self
    }

    /// Sends `key` as `X-Tenant-Api-Key` on the routes a site's backend calls (register, login,
    /// verification, password reset, invitations, user lookup).
    pub fn with_tenant_key(mut self, key: impl Into<String>) -> Self {
        self.tenant_key = Some(key.into());
        self
    }

    /// How long a call may take before it fails with [`ClientError::Timeout`] (30 s by default).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The base URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    // ---- Health ----

    /// `GET /api/health`.
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.call(Method::GET, "/api/health", Auth::Public, None::<&()>)
            .await
    }

    // ---- Accounts and sessions ----

    /// `POST /api/auth/register` (tenant key): starts a registration; the user gets an email.
    pub async fn register(&self, body: &RegisterRequest) -> Result<Message, ClientError> {
        self.post("/api/auth/register", Auth::Tenant, body).await
    }

    /// `POST /api/auth/invite-user` (tenant key): creates an unverified user without a password
    /// and emails them a link to choose one.
    pub async fn invite_user(&self, body: &InviteUserRequest) -> Result<User, ClientError> {
        self.post("/api/auth/invite-user", Auth::Tenant, body).await
    }

    /// `POST /api/auth/login` (tenant key).
    pub async fn login(&self, body: &LoginRequest) -> Result<Session, ClientError> {
        self.post("/api/auth/login", Auth::Tenant, body).await
    }

    /// `POST /api/auth/logout` (bearer): revokes `token`, and the refresh token when given.
    pub async fn logout(&self, token: &str, body: &LogoutRequest) -> Result<Message, ClientError> {
        self.post("/api/auth/logout", Auth::Bearer(token), body)
            .await
    }

    /// `POST /api/auth/refresh`: exchanges a refresh token for a new session.
    pub async fn refresh(&self, body: &RefreshRequest) -> Result<Session, ClientError> {
        self.post("/api/auth/refresh", Auth::Public, body).await
    }

    /// `GET /api/auth/me` (bearer): the user `token` authenticates.
    pub async fn me(&self, token: &str) -> Result<User, ClientError> {
        self.call(
            Method::GET,
            "/api/auth/me",
            Auth::Bearer(token),
            None::<&()>,
        )
        .await
    }

    /// `POST /api/auth/verify-email` (tenant key).
    pub async fn verify_email(&self, body: &VerifyEmailRequest) -> Result<Verified, ClientError> {
        self.post("/api/auth/verify-email", Auth::Tenant, body)
            .await
    }

    /// `POST /api/auth/check-verification-token` (tenant key): what a verification token leads
    /// to, without using it.
    pub async fn check_verification_token(
        &self,
        body: &CheckVerificationTokenRequest,
    ) -> Result<TokenStatus, ClientError> {
        self.post("/api/auth/check-verification-token", Auth::Tenant, body)
            .await
    }

    /// `POST /api/auth/change-password` (bearer).
    pub async fn change_password(
        &self,
        token: &str,
        body: &ChangePasswordRequest,
    ) -> Result<User, ClientError> {
        self.post("/api/auth/change-password", Auth::Bearer(token), body)
            .await
    }

    /// `POST /api/auth/request-password-reset` (tenant key). Answers the same whether or not
    /// the address has an account.
    pub async fn request_password_reset(
        &self,
        body: &PasswordResetRequest,
    ) -> Result<Message, ClientError> {
        self.post("/api/auth/request-password-reset", Auth::Tenant, body)
            .await
    }

    /// `POST /api/auth/reset-password` (tenant key).
    pub async fn reset_password(&self, body: &ResetPasswordRequest) -> Result<User, ClientError> {
        self.post("/api/auth/reset-password", Auth::Tenant, body)
            .await
    }

    /// `POST /api/auth/request-email-change` (bearer): emails a confirmation link to the new
    /// address.
    pub async fn request_email_change(
        &self,
        token: &str,
        body: &EmailChangeRequest,
    ) -> Result<Message, ClientError> {
        self.post("/api/auth/request-email-change", Auth::Bearer(token), body)
            .await
    }

    /// `POST /api/auth/confirm-email-change`.
    pub async fn confirm_email_change(
        &self,
        body: &ConfirmEmailChangeRequest,
    ) -> Result<User, ClientError> {
        self.post("/api/auth/confirm-email-change", Auth::Public, body)
            .await
    }

    // ---- Sites ----

    /// `POST /api/sites` (master key).
    pub async fn create_site(&self, body: &CreateSiteRequest) -> Result<SiteAdmin, ClientError> {
        self.post("/api/sites", Auth::Master, body).await
    }

    /// `GET /api/sites` (master key).
    pub async fn list_sites(&self) -> Result<Vec<SiteAdmin>, ClientError> {
        self.call(Method::GET, "/api/sites", Auth::Master, None::<&()>)
            .await
    }

    /// `GET /api/sites/{site_id}` (master key).
    pub async fn get_site(&self, site_id: Uuid) -> Result<SiteAdmin, ClientError> {
        self.call(
            Method::GET,
            &format!("/api/sites/{site_id}"),
            Auth::Master,
            None::<&()>,
        )
        .await
    }

    /// `GET /api/sites/by-domain?domain=…`: the public view of a site.
    pub async fn site_by_domain(&self, domain: &str) -> Result<SitePublic, ClientError> {
        self.call(
            Method::GET,
            &format!("/api/sites/by-domain?{}", domain_query(domain)),
            Auth::Public,
            None::<&()>,
        )
        .await
    }

    /// `PUT /api/sites/{site_id}` (master key): changes the fields that are set.
    pub async fn update_site(
        &self,
        site_id: Uuid,
        body: &UpdateSiteRequest,
    ) -> Result<SiteAdmin, ClientError> {
        self.call(
            Method::PUT,
            &format!("/api/sites/{site_id}"),
            Auth::Master,
            Some(body),
        )
        .await
    }

    /// `DELETE /api/sites/{site_id}` (master key).
    pub async fn delete_site(&self, site_id: Uuid) -> Result<Message, ClientError> {
        self.call(
            Method::DELETE,
            &format!("/api/sites/{site_id}"),
            Auth::Master,
            None::<&()>,
        )
        .await
    }

    // ---- Users ----

    /// `GET /api/sites/{site_id}/users` (master key).
    pub async fn list_site_users(&self, site_id: Uuid) -> Result<Vec<User>, ClientError> {
        self.call(
            Method::GET,
            &format!("/api/sites/{site_id}/users"),
            Auth::Master,
            None::<&()>,
        )
        .await
    }

    /// `GET /api/sites/by-domain/users?domain=…` (master key).
    pub async fn list_domain_users(&self, domain: &str) -> Result<Vec<User>, ClientError> {
        self.call(
            Method::GET,
            &format!("/api/sites/by-domain/users?{}", domain_query(domain)),
            Auth::Master,
            None::<&()>,
        )
        .await
    }

    /// `GET /api/sites/{site_id}/users/{user_id}` (tenant key of that site).
    pub async fn get_site_user(&self, site_id: Uuid, user_id: Uuid) -> Result<User, ClientError> {
        self.call(
            Method::GET,
            &format!("/api/sites/{site_id}/users/{user_id}"),
            Auth::Tenant,
            None::<&()>,
        )
        .await
    }

    /// `POST /api/admin/register` (master key): creates a user in any site.
    pub async fn admin_register(&self, body: &AdminRegisterRequest) -> Result<User, ClientError> {
        self.post("/api/admin/register", Auth::Master, body).await
    }

    /// `POST /api/admin/register-user` (a site admin's bearer token): creates a user in the
    /// admin's site.
    pub async fn admin_register_user(
        &self,
        token: &str,
        body: &AdminRegisterUserRequest,
    ) -> Result<User, ClientError> {
        self.post("/api/admin/register-user", Auth::Bearer(token), body)
            .await
    }

    /// `GET /api/admin/users` (a site admin's bearer token): the users of the admin's site.
    pub async fn admin_list_users(&self, token: &str) -> Result<Vec<User>, ClientError> {
        self.call(
            Method::GET,
            "/api/admin/users",
            Auth::Bearer(token),
            None::<&()>,
        )
        .await
    }

    /// `DELETE /api/admin/users/{user_id}` (master key).
    pub async fn delete_user(&self, user_id: Uuid) -> Result<Message, ClientError> {
        self.call(
            Method::DELETE,
            &format!("/api/admin/users/{user_id}"),
            Auth::Master,
            None::<&()>,
        )
        .await
    }

    /// `PATCH /api/admin/users/{user_id}` (master key).
    pub async fn patch_user(
        &self,
        user_id: Uuid,
        body: &PatchUserRequest,
    ) -> Result<User, ClientError> {
        self.call(
            Method::PATCH,
            &format!("/api/admin/users/{user_id}"),
            Auth::Master,
            Some(body),
        )
        .await
    }

    /// `POST /api/admin/resend-verification/{user_id}` (master key).
    pub async fn resend_verification(&self, user_id: Uuid) -> Result<Message, ClientError> {
        self.call(
            Method::POST,
            &format!("/api/admin/resend-verification/{user_id}"),
            Auth::Master,
            None::<&()>,
        )
        .await
    }

    /// `POST /api/admin/cleanup-expired-tokens` (master key).
    pub async fn cleanup_expired_tokens(&self) -> Result<CleanupReport, ClientError> {
        self.call(
            Method::POST,
            "/api/admin/cleanup-expired-tokens",
            Auth::Master,
            None::<&()>,
        )
        .await
    }

    /// `POST /api/admin/deliver-pending-webhooks` (master key): one webhook sweep now.
    pub async fn deliver_pending_webhooks(&self) -> Result<WebhookSweep, ClientError> {
        self.call(
            Method::POST,
            "/api/admin/deliver-pending-webhooks",
            Auth::Master,
            None::<&()>,
        )
        .await
    }

    // ---- Plumbing ----

    async fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        auth: Auth<'_>,
        body: &B,
    ) -> Result<R, ClientError> {
        self.call(Method::POST, path, auth, Some(body)).await
    }

    async fn call<B: Serialize, R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        auth: Auth<'_>,
        body: Option<&B>,
    ) -> Result<R, ClientError> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        request = match auth {
            Auth::Public => request,
            Auth::Master => match &self.master_key {
                Some(key) => request.header("X-API-Key", key),
                None => request,
            },
            Auth::Tenant => match &self.tenant_key {
                Some(key) => request.header("X-Tenant-Api-Key", key),
                None => request,
            },
            Auth::Bearer(token) => request.header(AUTHORIZATION, format!("Bearer {token}")),
        };
        if let Some(body) = body {
            let json = serde_json::to_vec(body).map_err(|e| ClientError::Decode {
                status: 0,
                message: format!("the request body does not serialise: {e}"),
            })?;
            request = request.header(CONTENT_TYPE, "application/json").body(json);
        }
        let exchange = async {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let bytes = response.bytes().await?;
            Ok::<_, ClientError>((status, retry_after, bytes))
        };
        let (status, retry_after, bytes) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout)??;
        if status >= 400 {
            let body: ErrorBody =
                serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
                    status,
                    message: e.to_string(),
                })?;
            return Err(ClientError::Api {
                status,
                body,
                retry_after,
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
            status,
            message: e.to_string(),
        })
    }
}

/// `domain=…`, percent-encoded.
fn domain_query(domain: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("domain", domain)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_url_loses_its_trailing_slashes() {
        assert_eq!(
            AegisClient::new("http://h/auth/").base_url(),
            "http://h/auth"
        );
        assert_eq!(AegisClient::new("http://h").base_url(), "http://h");
    }

    #[test]
    fn debug_output_hides_the_keys() {
        let client = AegisClient::new("http://h")
            .with_master_key("master-secret")
            .with_tenant_key("tenant-secret");
        let shown = format!("{client:?}");
        assert!(!shown.contains("master-secret"));
        assert!(!shown.contains("tenant-secret"));
    }

    #[test]
    fn the_domain_is_percent_encoded() {
        assert_eq!(domain_query("a b&c.com"), "domain=a+b%26c.com");
    }
}
