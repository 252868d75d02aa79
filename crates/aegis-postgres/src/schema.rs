// The tables Aegis reads and writes. Written by hand to match `migrations/`; the reference schema
// (§9.4 of the contract) is the first migration.

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

diesel::joinable!(users -> sites (site_uuid));
diesel::allow_tables_to_appear_in_same_query!(sites, users);
