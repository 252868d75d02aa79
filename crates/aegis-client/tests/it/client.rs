//! Every call of the journey a site backend makes, and the errors it reads.

use aegis_api_types::{
    CheckVerificationTokenRequest, LoginRequest, LogoutRequest, RefreshRequest, RegisterRequest,
    Role, UpdateSiteRequest, VerifyEmailRequest,
};
use aegis_client::{AegisClient, ClientError};

use crate::support::{PASSWORD, Server};

#[actix_web::test]
async fn a_user_registers_verifies_signs_in_refreshes_and_signs_out() {
    let server = Server::start().await;
    let operator = server.operator();
    assert_eq!(operator.health().await.unwrap().status, "healthy");

    let site = server.site("client.example.com").await;
    assert_eq!(site.public.domain, "client.example.com");
    assert_eq!(operator.list_sites().await.unwrap().len(), 1);
    assert_eq!(
        operator
            .get_site(site.public.uuid)
            .await
            .unwrap()
            .public
            .uuid,
        site.public.uuid
    );
    let public = AegisClient::new(server.url())
        .site_by_domain("client.example.com")
        .await
        .unwrap();
    assert_eq!(public.uuid, site.public.uuid);
    let renamed = operator
        .update_site(
            site.public.uuid,
            &UpdateSiteRequest {
                name: Some("Renamed".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.public.name, "Renamed");

    let tenant = server.tenant(&site);
    let site_id = site.public.uuid;
    let registered = tenant
        .register(&RegisterRequest {
            site_id,
            email: "ada@example.com".into(),
            password: Some(PASSWORD.into()),
        })
        .await
        .unwrap();
    assert!(registered.message.starts_with("Registration initiated"));

    let token = server
        .emailed_token("verification", "ada@example.com")
        .await;
    let status = tenant
        .check_verification_token(&CheckVerificationTokenRequest {
            site_id,
            token: token.clone(),
        })
        .await
        .unwrap();
    assert_eq!(status.email, "ada@example.com");
    assert!(!status.password_required);
    let verified = tenant
        .verify_email(&VerifyEmailRequest {
            site_id,
            token,
            password: None,
        })
        .await
        .unwrap();
    assert!(verified.user.is_verified);

    let session = tenant
        .login(&LoginRequest {
            site_id,
            email: "ada@example.com".into(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap();
    let me = tenant.me(&session.auth_token.token).await.unwrap();
    assert_eq!(me.email, "ada@example.com");
    assert_eq!(me.role, Role::User);
    assert_eq!(me.uuid, verified.user.uuid);
    assert_eq!(
        tenant.get_site_user(site_id, me.uuid).await.unwrap().email,
        "ada@example.com"
    );
    assert_eq!(
        operator.list_site_users(site_id).await.unwrap()[0].uuid,
        me.uuid
    );

    let refresh = session.refresh_token.expect("a refresh token");
    let renewed = tenant
        .refresh(&RefreshRequest {
            refresh_token: refresh.token,
        })
        .await
        .unwrap();
    assert_eq!(renewed.auth_token.user_uuid, me.uuid);
    let token = renewed.auth_token.token;
    assert_eq!(tenant.me(&token).await.unwrap().uuid, me.uuid);

    let bye = tenant
        .logout(&token, &LogoutRequest::default())
        .await
        .unwrap();
    assert_eq!(bye.message, "Logged out successfully");
    let refused = tenant.me(&token).await.unwrap_err();
    assert!(refused.is_unauthorized(), "{refused:?}");
}

#[actix_web::test]
async fn error_answers_are_typed() {
    let server = Server::start().await;
    let site = server.site("errors.example.com").await;
    server.signed_in(&site, "bob@example.com").await;
    let tenant = server.tenant(&site);
    let site_id = site.public.uuid;

    let wrong = tenant
        .login(&LoginRequest {
            site_id,
            email: "bob@example.com".into(),
            password: "not the password at all".into(),
        })
        .await
        .unwrap_err();
    match &wrong {
        ClientError::Api { status, body, .. } => {
            assert_eq!(*status, 401);
            assert_eq!(body.error, "Invalid credentials");
        }
        other => panic!("expected an API error, got {other:?}"),
    }
    assert!(wrong.is_unauthorized());
    assert!(!wrong.is_unavailable());

    let invalid = tenant
        .register(&RegisterRequest {
            site_id,
            email: "not-an-address".into(),
            password: Some(PASSWORD.into()),
        })
        .await
        .unwrap_err();
    assert_eq!(invalid.status(), Some(400));
    let body = invalid.body().expect("an error body");
    assert_eq!(body.error, "Validation error");
    let details = body.details.as_ref().expect("per-field details");
    assert!(details.contains_key("email"), "{details:?}");

    // Without the master key, the operator's routes are refused.
    let anonymous = AegisClient::new(server.url());
    assert!(anonymous.list_sites().await.unwrap_err().is_unauthorized());
    // A wrong bearer token.
    assert!(
        tenant
            .me("no-such-token")
            .await
            .unwrap_err()
            .is_unauthorized()
    );
    // An unknown site.
    let missing = server
        .operator()
        .get_site(uuid::Uuid::now_v7())
        .await
        .unwrap_err();
    assert!(missing.is_not_found(), "{missing:?}");
}

#[actix_web::test]
async fn an_unreachable_aegis_is_a_transport_error() {
    let server = Server::start().await;
    let client = AegisClient::new(server.url());
    server.stop().await;
    let error = client.health().await.unwrap_err();
    assert!(matches!(error, ClientError::Transport(_)), "{error:?}");
    assert!(error.is_unavailable());
    assert_eq!(error.status(), None);
}

#[actix_web::test]
async fn a_server_that_never_answers_is_a_timeout() {
    // The kernel accepts the connection into the backlog; nobody ever answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = AegisClient::new(format!("http://{}", silent.local_addr().unwrap()))
        .with_timeout(std::time::Duration::from_millis(200));
    let error = client.health().await.unwrap_err();
    assert!(matches!(error, ClientError::Timeout), "{error:?}");
    assert!(error.is_unavailable());
}
