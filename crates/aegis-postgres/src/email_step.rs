//! The data step that brings stored email addresses to Aegis's normal form (decision 30): Unicode
//! NFC, lowercase, the domain in IDNA ASCII. It needs Rust's Unicode and IDNA tables, so it runs
//! after the SQL migrations rather than in one, on the migration connection and under its advisory
//! lock, and records itself in `aegis_data_steps` so that it runs once per database.
//!
//! Nothing is merged: when two users of one site would end up with the same address, both rows
//! stay exactly as they are, and so does an address that no longer parses. Each such case is
//! reported (site and user ids, never the address) for an operator to resolve.

use std::collections::BTreeMap;
use std::fmt;

use aegis_domain::user::Email;
use diesel::pg::Pg;
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::{email_change_requests, users};

/// The name this step records in `aegis_data_steps`.
pub const EMAIL_NORMAL_FORM_STEP: &str = "email_normal_form";

/// A stored row the step left as it was, for an operator to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnresolvedEmail {
    /// Two users of one site whose addresses have the same normal form: neither was changed. A
    /// third such user is reported as another pair with the first.
    Collision {
        /// The site both users belong to.
        site: Uuid,
        /// The user with the lowest id among those sharing the address.
        first_user: Uuid,
        /// Another user of the site whose address has the same normal form.
        second_user: Uuid,
    },
    /// A user's address that does not parse under the current rules (a quoted local part, say).
    Unparseable {
        /// The user's site.
        site: Uuid,
        /// The user whose stored address was left as it was.
        user: Uuid,
    },
    /// A pending email change whose new address does not parse: its link will not confirm.
    UnparseableChange {
        /// The user's site.
        site: Uuid,
        /// The user who requested the change.
        user: Uuid,
    },
}

impl fmt::Display for UnresolvedEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Collision {
                site,
                first_user,
                second_user,
            } => write!(
                f,
                "site {site}: users {first_user} and {second_user} have the same address in \
                 normal form; both left as stored"
            ),
            Self::Unparseable { site, user } => write!(
                f,
                "site {site}: the address of user {user} is not valid under the current rules; \
                 left as stored"
            ),
            Self::UnparseableChange { site, user } => write!(
                f,
                "site {site}: the pending email change of user {user} names an address that is \
                 not valid under the current rules; left as stored"
            ),
        }
    }
}

/// What the step did, the one time it ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmailNormalFormReport {
    /// Users whose stored address was rewritten in its normal form.
    pub users_normalised: usize,
    /// Pending email changes whose new address was rewritten in its normal form.
    pub changes_normalised: usize,
    /// Rows left as stored, in site order.
    pub unresolved: Vec<UnresolvedEmail>,
}

/// Runs the step unless this database has already recorded it: `None` then. All of it happens in
/// one transaction, together with the record, so it is done completely or not at all. Each
/// unresolved row is logged as a warning as well as returned.
pub fn normalize_stored_emails<C>(conn: &mut C) -> QueryResult<Option<EmailNormalFormReport>>
where
    C: Connection<Backend = Pg> + diesel::connection::LoadConnection,
{
    conn.transaction(|conn| {
        let claimed = diesel::sql_query(
            "INSERT INTO aegis_data_steps (name, done_at) \
             VALUES ($1, extract(epoch FROM now())::bigint) ON CONFLICT (name) DO NOTHING",
        )
        .bind::<diesel::sql_types::Text, _>(EMAIL_NORMAL_FORM_STEP)
        .execute(conn)?;
        if claimed == 0 {
            return Ok(None);
        }
        let mut report = EmailNormalFormReport::default();
        normalize_users(conn, &mut report)?;
        normalize_changes(conn, &mut report)?;
        for item in &report.unresolved {
            log_unresolved(item);
        }
        Ok(Some(report))
    })
}

fn log_unresolved(item: &UnresolvedEmail) {
    match item {
        UnresolvedEmail::Collision {
            site,
            first_user,
            second_user,
        } => tracing::warn!(
            site = %site,
            first_user = %first_user,
            second_user = %second_user,
            "two users of a site have the same email address in normal form: both left as stored"
        ),
        UnresolvedEmail::Unparseable { site, user } => tracing::warn!(
            site = %site,
            user = %user,
            "a stored email address is not valid under the current rules: left as stored"
        ),
        UnresolvedEmail::UnparseableChange { site, user } => tracing::warn!(
            site = %site,
            user = %user,
            "a pending email change names an address not valid under the current rules: left as stored"
        ),
    }
}

/// Site by site, so that memory holds one site's users at a time.
fn normalize_users<C>(conn: &mut C, report: &mut EmailNormalFormReport) -> QueryResult<()>
where
    C: Connection<Backend = Pg> + diesel::connection::LoadConnection,
{
    let sites: Vec<Uuid> = users::table
        .select(users::site_uuid)
        .distinct()
        .order(users::site_uuid)
        .load(conn)?;
    for site in sites {
        let rows: Vec<(Uuid, String)> = users::table
            .filter(users::site_uuid.eq(site))
            .select((users::uuid, users::email))
            .order(users::uuid)
            .load(conn)?;
        // Normal form → the users whose stored address has it, in id order.
        let mut groups: BTreeMap<String, Vec<(Uuid, String)>> = BTreeMap::new();
        for (user, stored) in rows {
            match Email::parse(&stored) {
                Ok(email) => groups
                    .entry(email.into_string())
                    .or_default()
                    .push((user, stored)),
                Err(_) => report
                    .unresolved
                    .push(UnresolvedEmail::Unparseable { site, user }),
            }
        }
        for (normal, members) in groups {
            match members.as_slice() {
                [(user, stored)] if *stored != normal => {
                    // The normal form is its own normal form, so no other row of the site holds
                    // `normal` already: the unique index cannot refuse this.
                    diesel::update(users::table.find(*user))
                        .set(users::email.eq(&normal))
                        .execute(conn)?;
                    report.users_normalised += 1;
                }
                [_] => {}
                [(first, _), others @ ..] => {
                    for (second, _) in others {
                        report.unresolved.push(UnresolvedEmail::Collision {
                            site,
                            first_user: *first,
                            second_user: *second,
                        });
                    }
                }
                [] => {}
            }
        }
    }
    Ok(())
}

fn normalize_changes<C>(conn: &mut C, report: &mut EmailNormalFormReport) -> QueryResult<()>
where
    C: Connection<Backend = Pg> + diesel::connection::LoadConnection,
{
    let rows: Vec<(i32, Uuid, Uuid, String)> = email_change_requests::table
        .select((
            email_change_requests::id,
            email_change_requests::site_uuid,
            email_change_requests::user_uuid,
            email_change_requests::new_email,
        ))
        .order((email_change_requests::site_uuid, email_change_requests::id))
        .load(conn)?;
    for (id, site, user, stored) in rows {
        match Email::parse(&stored) {
            Ok(email) if email.as_str() != stored => {
                diesel::update(email_change_requests::table.find(id))
                    .set(email_change_requests::new_email.eq(email.as_str()))
                    .execute(conn)?;
                report.changes_normalised += 1;
            }
            Ok(_) => {}
            Err(_) => report
                .unresolved
                .push(UnresolvedEmail::UnparseableChange { site, user }),
        }
    }
    Ok(())
}
