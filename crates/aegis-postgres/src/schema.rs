// The tables Aegis reads and writes. Written by hand to match `migrations/`; the original
// service's schema is the first migration (`2026-01-01-000000_reference_schema`).

pub mod sql_types {
    #[derive(diesel::sql_types::SqlType, diesel::query_builder::QueryId)]
    #[diesel(postgres_type(name = "user_role"))]
    pub struct UserRole;
}

diesel::table! {
    sites (uuid) {
        uuid -> Uuid,
        name -> Varchar,
        domain -> Varchar,
        frontend_url -> Varchar,
        verification_redirect_url -> Nullable<Varchar>,
        email_from -> Varchar,
        email_from_name -> Varchar,
        created_at -> Int8,
        updated_at -> Int8,
        allow_self_registration -> Bool,
        webhook_url -> Nullable<Varchar>,
        webhook_secret -> Nullable<Varchar>,
        tenant_api_key -> Varchar,
        mailgun_domain -> Nullable<Varchar>,
        mailgun_api_key -> Nullable<Varchar>,
        deletion_protected -> Bool,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::UserRole;

    users (uuid) {
        uuid -> Uuid,
        site_uuid -> Uuid,
        email -> Varchar,
        password_hash -> Nullable<Varchar>,
        is_verified -> Nullable<Bool>,
        role -> Nullable<UserRole>,
        created_at -> Int8,
        updated_at -> Int8,
        deletion_protected -> Bool,
    }
}

diesel::table! {
    auth_tokens (id) {
        id -> Int4,
        site_uuid -> Uuid,
        user_uuid -> Uuid,
        token -> Varchar,
        expires_at -> Int8,
        created_at -> Int8,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Int4,
        site_uuid -> Uuid,
        user_uuid -> Uuid,
        token -> Varchar,
        family_id -> Varchar,
        expires_at -> Int8,
        created_at -> Int8,
        used_at -> Nullable<Int8>,
        revoked -> Nullable<Bool>,
    }
}

diesel::table! {
    email_verification_tokens (id) {
        id -> Int4,
        site_uuid -> Uuid,
        user_uuid -> Uuid,
        token -> Varchar,
        expires_at -> Int8,
        created_at -> Int8,
    }
}

diesel::table! {
    webhook_deliveries (event_id) {
        event_id -> Uuid,
        site_uuid -> Uuid,
        event_type -> Varchar,
        payload -> Text,
        status -> Varchar,
        attempts -> Int4,
        next_attempt_at -> Int8,
        last_status -> Nullable<Int4>,
        last_error -> Nullable<Text>,
        created_at -> Int8,
        updated_at -> Int8,
    }
}

diesel::table! {
    // The columns the query builder touches (diesel's limit is 16); rows are written and claimed
    // with plain SQL.
    email_outbox (id) {
        id -> Uuid,
        text_body -> Text,
        html_body -> Text,
        status -> Varchar,
        attempts -> Int4,
        next_attempt_at -> Int8,
        last_error -> Nullable<Text>,
        updated_at -> Int8,
        sealed_body -> Nullable<Bytea>,
        sealed_with -> Nullable<Varchar>,
        link_expires_at -> Nullable<Int8>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(auth_tokens, users);

diesel::joinable!(users -> sites (site_uuid));
diesel::allow_tables_to_appear_in_same_query!(sites, users);

diesel::table! {
    password_reset_tokens (id) {
        id -> Int4,
        site_uuid -> Uuid,
        user_uuid -> Uuid,
        token -> Varchar,
        expires_at -> Int8,
        created_at -> Int8,
        used -> Nullable<Bool>,
    }
}

diesel::table! {
    email_change_requests (id) {
        id -> Int4,
        site_uuid -> Uuid,
        user_uuid -> Uuid,
        new_email -> Varchar,
        token -> Varchar,
        expires_at -> Int8,
        created_at -> Int8,
    }
}
