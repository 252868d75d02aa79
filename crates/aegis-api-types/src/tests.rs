//! Round trips for every type, and bodies the server's own tests assert, read into the response
//! types.

use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

use super::*;

const SITE: &str = "0191e1a0-0000-7000-8000-000000000001";
const USER: &str = "0191e1a0-0000-7000-8000-0000000000ff";

fn site_id() -> Uuid {
    Uuid::parse_str(SITE).unwrap()
}

fn user_id() -> Uuid {
    Uuid::parse_str(USER).unwrap()
}

/// Serialises `value`, reads it back, and checks nothing changed.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) {
    let text = serde_json::to_string(value).unwrap();
    let back: T = serde_json::from_str(&text).unwrap();
    assert_eq!(&back, value, "{text}");
}

/// Reads `body` into `T`, and checks that writing it again gives `body` back exactly.
fn read<T: Serialize + DeserializeOwned>(body: Value) -> T {
    let value: T = serde_json::from_value(body.clone()).unwrap();
    assert_eq!(serde_json::to_value(&value).unwrap(), body);
    value
}

fn user() -> User {
    User {
        uuid: user_id(),
        site_uuid: site_id(),
        email: "new.user@example.com".into(),
        is_verified: true,
        role: Role::Admin,
        created_at: 1_700_000_000,
        updated_at: 1_700_000_500,
        deletion_protected: false,
    }
}

fn site_public() -> SitePublic {
    SitePublic {
        uuid: site_id(),
        name: "Legacy".into(),
        domain: "legacy.example.com".into(),
        frontend_url: "https://legacy.example.com".into(),
        verification_redirect_url: None,
        email_from: "noreply@legacy.example.com".into(),
        email_from_name: "Legacy Team".into(),
        created_at: 1_700_000_000,
        updated_at: 1_700_000_500,
        allow_self_registration: false,
    }
}

fn site_admin() -> SiteAdmin {
    SiteAdmin {
        public: site_public(),
        webhook_url: Some("https://hooks.legacy.example.com/in".into()),
        webhook_secret: Some("whsec-legacy".into()),
        tenant_api_key: Some("legacy-tenant-key-from-fixtures".into()),
        mailgun_domain: Some("mg.legacy.example.com".into()),
        mailgun_api_key: None,
        deletion_protected: true,
    }
}

fn session(refresh: bool) -> Session {
    Session {
        auth_token: AuthToken {
            token: "a".repeat(43),
            user_uuid: user_id(),
            expires_at: 1_700_003_600,
        },
        refresh_token: refresh.then(|| RefreshToken {
            token: "r".repeat(43),
            user_uuid: user_id(),
            site_uuid: site_id(),
            expires_at: 1_700_604_800,
        }),
    }
}

#[test]
fn responses_round_trip() {
    round_trip(&user());
    round_trip(&User {
        role: Role::User,
        ..user()
    });
    round_trip(&session(true));
    round_trip(&session(false));
    round_trip(&Verified {
        user: user(),
        redirect_url: "http://test.example.com".into(),
    });
    round_trip(&TokenStatus {
        password_required: true,
        email: "guest@example.com".into(),
    });
    round_trip(&site_public());
    round_trip(&SitePublic {
        verification_redirect_url: Some("https://example.com/welcome".into()),
        ..site_public()
    });
    round_trip(&site_admin());
    round_trip(&SiteAdmin {
        webhook_url: None,
        webhook_secret: None,
        tenant_api_key: None,
        mailgun_domain: None,
        mailgun_api_key: Some("key".into()),
        ..site_admin()
    });
    round_trip(&Message {
        message: "Logged out successfully".into(),
    });
    round_trip(&Health {
        status: "healthy".into(),
        service: "auth-service".into(),
        version: "1.2.3".into(),
    });
    round_trip(&CleanupReport {
        auth_tokens: 1,
        refresh_tokens: 2,
        email_verification_tokens: 3,
        password_reset_tokens: 4,
        email_change_requests: 5,
        total: 15,
    });
    round_trip(&WebhookSweep {
        attempted: 1,
        delivered: 2,
        retrying: 3,
        exhausted: 4,
        still_due: 5,
        pruned: 6,
    });
    round_trip(&ErrorBody {
        error: "Token not found".into(),
        code: None,
        details: None,
    });
    round_trip(&ErrorBody {
        error: "Validation error".into(),
        code: Some("x".into()),
        details: Some(FieldErrors::from([(
            "email".to_owned(),
            vec!["Not a valid email address.".to_owned()],
        )])),
    });
}

#[test]
fn requests_round_trip() {
    round_trip(&RegisterRequest {
        site_id: site_id(),
        email: "a@example.com".into(),
        password: Some("password-1".into()),
    });
    round_trip(&RegisterRequest {
        site_id: site_id(),
        email: "a@example.com".into(),
        password: None,
    });
    round_trip(&InviteUserRequest {
        site_id: site_id(),
        email: "a@example.com".into(),
    });
    round_trip(&LoginRequest {
        site_id: site_id(),
        email: "a@example.com".into(),
        password: "password-1".into(),
    });
    round_trip(&LogoutRequest::default());
    round_trip(&LogoutRequest {
        refresh_token: Some("r".into()),
    });
    round_trip(&RefreshRequest {
        refresh_token: "r".into(),
    });
    round_trip(&VerifyEmailRequest {
        site_id: site_id(),
        token: "t".into(),
        password: Some("password-1".into()),
    });
    round_trip(&VerifyEmailRequest {
        site_id: site_id(),
        token: "t".into(),
        password: None,
    });
    round_trip(&CheckVerificationTokenRequest {
        site_id: site_id(),
        token: "t".into(),
    });
    round_trip(&ChangePasswordRequest {
        old_password: "password-1".into(),
        new_password: "password-2".into(),
    });
    round_trip(&PasswordResetRequest {
        site_id: site_id(),
        email: "a@example.com".into(),
    });
    round_trip(&ResetPasswordRequest {
        site_id: site_id(),
        token: "t".into(),
        new_password: "password-2".into(),
    });
    round_trip(&EmailChangeRequest {
        new_email: "new@example.com".into(),
        password: "password-1".into(),
    });
    round_trip(&ConfirmEmailChangeRequest { token: "t".into() });
    round_trip(&AdminRegisterRequest {
        site_id: site_id(),
        email: "a@example.com".into(),
        role: Some(Role::Admin),
    });
    round_trip(&AdminRegisterRequest {
        site_id: site_id(),
        email: "a@example.com".into(),
        role: None,
    });
    round_trip(&AdminRegisterUserRequest {
        email: "a@example.com".into(),
        role: Some(Role::User),
    });
    round_trip(&PatchUserRequest {
        deletion_protected: true,
    });
    let create = CreateSiteRequest {
        name: "Open".into(),
        domain: "open.example.com".into(),
        frontend_url: "https://open.example.com".into(),
        verification_redirect_url: None,
        email_from: "noreply@open.example.com".into(),
        email_from_name: "Open".into(),
        allow_self_registration: None,
        webhook_url: None,
        mailgun_domain: None,
        mailgun_api_key: None,
    };
    round_trip(&create);
    round_trip(&CreateSiteRequest {
        verification_redirect_url: Some("https://open.example.com/welcome".into()),
        allow_self_registration: Some(false),
        webhook_url: Some("https://hooks.example.com".into()),
        mailgun_domain: Some("mg.example.com".into()),
        mailgun_api_key: Some("key".into()),
        ..create
    });
    round_trip(&UpdateSiteRequest::default());
    round_trip(&UpdateSiteRequest {
        name: Some("Renamed".into()),
        verification_redirect_url: Some(None),
        webhook_url: Some(Some("https://hooks.example.com".into())),
        regenerate_webhook_secret: Some(true),
        deletion_protected: Some(false),
        ..UpdateSiteRequest::default()
    });
}

#[test]
fn optional_request_fields_are_left_out() {
    let register = RegisterRequest {
        site_id: site_id(),
        email: "a@example.com".into(),
        password: None,
    };
    assert_eq!(
        serde_json::to_value(&register).unwrap(),
        json!({"site_id": SITE, "email": "a@example.com"})
    );
    assert_eq!(
        serde_json::to_value(LogoutRequest::default()).unwrap(),
        json!({})
    );
}

#[test]
fn a_site_update_tells_absent_from_null() {
    let clear = UpdateSiteRequest {
        webhook_url: Some(None),
        ..UpdateSiteRequest::default()
    };
    assert_eq!(
        serde_json::to_value(&clear).unwrap(),
        json!({"webhook_url": null})
    );
    let read: UpdateSiteRequest = serde_json::from_value(json!({"webhook_url": null})).unwrap();
    assert_eq!(read, clear);
    let read: UpdateSiteRequest = serde_json::from_value(json!({"name": "Renamed"})).unwrap();
    assert_eq!(read.webhook_url, None);
}

// The bodies below are copied from the assertions of the server's HTTP tests.

#[test]
fn reads_a_session() {
    let token = "a".repeat(43);
    let session: Session = read(json!({
        "auth_token": {"token": token, "user_uuid": USER, "expires_at": 1_700_003_600},
        "refresh_token": {"token": "r", "user_uuid": USER,
                          "site_uuid": SITE, "expires_at": 1_700_604_800},
    }));
    assert_eq!(session.auth_token.user_uuid, user_id());
    assert_eq!(session.refresh_token.map(|r| r.site_uuid), Some(site_id()));
    let without: Session = read(json!({
        "auth_token": {"token": token, "user_uuid": USER, "expires_at": 1_700_003_600},
        "refresh_token": null,
    }));
    assert_eq!(without.refresh_token, None);
}

#[test]
fn reads_a_user_and_a_list_of_users() {
    let body = json!({
        "uuid": USER, "site_uuid": SITE, "email": "boss@example.com", "is_verified": true,
        "role": "admin", "created_at": 1_700_000_000, "updated_at": 1_700_000_000,
        "deletion_protected": false,
    });
    let user: User = read(body.clone());
    assert_eq!(user.role, Role::Admin);
    let users: Vec<User> = read(json!([body]));
    assert_eq!(users, vec![user]);
}

#[test]
fn reads_a_verification() {
    let verified: Verified = read(json!({
        "user": {
            "uuid": USER, "site_uuid": SITE, "email": "new.user@example.com",
            "is_verified": true, "role": "user", "created_at": 1_700_000_000,
            "updated_at": 1_700_000_000, "deletion_protected": false,
        },
        "redirect_url": "http://test.example.com",
    }));
    assert_eq!(verified.redirect_url, "http://test.example.com");
    assert!(verified.user.is_verified);
}

#[test]
fn reads_a_token_status() {
    let status: TokenStatus =
        read(json!({"password_required": false, "email": "new.user@example.com"}));
    assert!(!status.password_required);
    let status: TokenStatus =
        read(json!({"password_required": true, "email": "guest@example.com"}));
    assert!(status.password_required);
}

#[test]
fn reads_a_site_as_operators_see_it() {
    let site: SiteAdmin = read(json!({
        "uuid": "0191e1a0-0000-7000-8000-000000000001", "name": "Legacy",
        "domain": "legacy.example.com", "frontend_url": "https://legacy.example.com",
        "verification_redirect_url": null, "email_from": "noreply@legacy.example.com",
        "email_from_name": "Legacy Team", "created_at": 1700000000, "updated_at": 1700000500,
        "allow_self_registration": false, "webhook_url": "https://hooks.legacy.example.com/in",
        "webhook_secret": "whsec-legacy", "tenant_api_key": "legacy-tenant-key-from-fixtures",
        "mailgun_domain": "mg.legacy.example.com", "mailgun_api_key": null,
        "deletion_protected": true,
    }));
    assert_eq!(site, site_admin());
}

#[test]
fn reads_a_site_as_anyone_sees_it() {
    let site: SitePublic = read(json!({
        "uuid": "0191e1a0-0000-7000-8000-000000000001", "name": "Legacy",
        "domain": "legacy.example.com", "frontend_url": "https://legacy.example.com",
        "verification_redirect_url": null, "email_from": "noreply@legacy.example.com",
        "email_from_name": "Legacy Team", "created_at": 1700000000, "updated_at": 1700000500,
        "allow_self_registration": false,
    }));
    assert_eq!(site, site_public());
}

#[test]
fn reads_messages() {
    for text in [
        "Logged out successfully",
        "If the email exists, a password reset link has been sent",
        "Email change confirmation sent",
    ] {
        let message: Message = read(json!({"message": text}));
        assert_eq!(message.message, text);
    }
}

#[test]
fn reads_health() {
    let health: Health =
        read(json!({"status": "healthy", "service": "auth-service", "version": "1.2.3"}));
    assert_eq!(health.version, "1.2.3");
}

#[test]
fn reads_a_cleanup_report() {
    let report: CleanupReport = read(json!({
        "auth_tokens": 1, "refresh_tokens": 1, "email_verification_tokens": 1,
        "password_reset_tokens": 1, "email_change_requests": 1, "total": 5
    }));
    assert_eq!(report.total, 5);
}

#[test]
fn reads_a_webhook_sweep() {
    let sweep: WebhookSweep = read(json!({
        "attempted": 1, "delivered": 1, "retrying": 0, "exhausted": 0, "still_due": 0,
        "pruned": 0
    }));
    assert_eq!((sweep.attempted, sweep.delivered), (1, 1));
}

#[test]
fn reads_error_bodies() {
    let plain: ErrorBody = read(json!({"error": "Too many requests: 100 per 1 hour"}));
    assert_eq!((plain.code, plain.details), (None, None));
    let coded: ErrorBody =
        read(json!({"error": "Cannot delete the last admin of a site", "code": "last_site_admin"}));
    assert_eq!(coded.code.as_deref(), Some("last_site_admin"));
    let validation: ErrorBody = read(json!({
        "error": "Validation error",
        "details": {"refresh_token": ["Not a valid string."], "x": ["Unknown field."]},
    }));
    let details = validation.details.unwrap();
    assert_eq!(details["x"], vec!["Unknown field.".to_owned()]);
}
