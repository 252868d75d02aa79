//! The request types of `aegis-api-types` carry exactly the fields each handler's schema declares:
//! a typed client never sends a field the server refuses as unknown, and never misses one it reads.

use aegis_api_types::*;
use serde::Serialize;
use uuid::Uuid;

use super::auth::handlers as auth;
use super::sites::dto as sites;
use super::users::handlers as users;

/// The field names `body` serialises with, every optional field set, sorted.
fn fields(body: &impl Serialize) -> Vec<String> {
    let value = serde_json::to_value(body).unwrap();
    let mut names: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    names.sort();
    names
}

fn declared(fields: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
    names.sort();
    names
}

fn s() -> String {
    "x".to_owned()
}

#[test]
fn auth_request_types_match_the_schemas() {
    let site_id = Uuid::nil();
    let cases = [
        (
            fields(&RegisterRequest {
                site_id,
                email: s(),
                password: Some(s()),
            }),
            auth::REGISTER_FIELDS,
        ),
        (
            fields(&InviteUserRequest {
                site_id,
                email: s(),
            }),
            auth::INVITE_USER_FIELDS,
        ),
        (
            fields(&LoginRequest {
                site_id,
                email: s(),
                password: s(),
            }),
            auth::LOGIN_FIELDS,
        ),
        (
            fields(&RefreshRequest { refresh_token: s() }),
            auth::REFRESH_FIELDS,
        ),
        (
            fields(&VerifyEmailRequest {
                site_id,
                token: s(),
                password: Some(s()),
            }),
            auth::VERIFY_EMAIL_FIELDS,
        ),
        (
            fields(&CheckVerificationTokenRequest {
                site_id,
                token: s(),
            }),
            auth::CHECK_VERIFICATION_TOKEN_FIELDS,
        ),
        (
            fields(&ChangePasswordRequest {
                old_password: s(),
                new_password: s(),
            }),
            auth::CHANGE_PASSWORD_FIELDS,
        ),
        (
            fields(&PasswordResetRequest {
                site_id,
                email: s(),
            }),
            auth::PASSWORD_RESET_REQUEST_FIELDS,
        ),
        (
            fields(&ResetPasswordRequest {
                site_id,
                token: s(),
                new_password: s(),
            }),
            auth::RESET_PASSWORD_FIELDS,
        ),
        (
            fields(&EmailChangeRequest {
                new_email: s(),
                password: s(),
            }),
            auth::EMAIL_CHANGE_FIELDS,
        ),
        (
            fields(&ConfirmEmailChangeRequest { token: s() }),
            auth::CONFIRM_EMAIL_CHANGE_FIELDS,
        ),
    ];
    for (sent, schema) in cases {
        assert_eq!(sent, declared(schema));
    }
}

#[test]
fn user_request_types_match_the_schemas() {
    let cases = [
        (
            fields(&AdminRegisterRequest {
                site_id: Uuid::nil(),
                email: s(),
                role: Some(Role::Admin),
            }),
            users::ADMIN_REGISTER_FIELDS,
        ),
        (
            fields(&AdminRegisterUserRequest {
                email: s(),
                role: Some(Role::User),
            }),
            users::ADMIN_REGISTER_USER_FIELDS,
        ),
        (
            fields(&PatchUserRequest {
                deletion_protected: true,
            }),
            users::PATCH_USER_FIELDS,
        ),
    ];
    for (sent, schema) in cases {
        assert_eq!(sent, declared(schema));
    }
}

#[test]
fn site_request_types_match_the_schemas() {
    let create = CreateSiteRequest {
        name: s(),
        domain: s(),
        frontend_url: s(),
        verification_redirect_url: Some(s()),
        email_from: s(),
        email_from_name: s(),
        allow_self_registration: Some(true),
        webhook_url: Some(s()),
        mailgun_domain: Some(s()),
        mailgun_api_key: Some(s()),
    };
    assert_eq!(fields(&create), declared(sites::CREATE_FIELDS));
    let update = UpdateSiteRequest {
        name: Some(s()),
        domain: Some(s()),
        frontend_url: Some(s()),
        verification_redirect_url: Some(None),
        email_from: Some(s()),
        email_from_name: Some(s()),
        allow_self_registration: Some(true),
        webhook_url: Some(Some(s())),
        regenerate_webhook_secret: Some(true),
        regenerate_tenant_api_key: Some(false),
        mailgun_domain: Some(None),
        mailgun_api_key: Some(Some(s())),
        deletion_protected: Some(false),
    };
    assert_eq!(fields(&update), declared(sites::UPDATE_FIELDS));
}

/// The wire role spellings are the domain's.
#[test]
fn roles_are_spelled_as_the_domain_spells_them() {
    use aegis_domain::user::Role as Domain;
    for role in [Domain::User, Domain::Admin] {
        assert_eq!(
            serde_json::to_value(super::auth::dto::role(role)).unwrap(),
            serde_json::json!(role.as_str())
        );
    }
}
