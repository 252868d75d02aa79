//! Database-level operations: creating databases and cloning templates. For local mode and tests.

use diesel::QueryableByName;
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};

/// Quotes an identifier for SQL. Database names here are generated, but quote them all the same.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[derive(QueryableByName)]
struct Exists {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    exists: bool,
}

/// Creates database `name` unless it exists. `admin_url` names any database on the same server.
pub async fn ensure_database(admin_url: &str, name: &str) -> Result<(), String> {
    let mut conn = AsyncPgConnection::establish(admin_url)
        .await
        .map_err(|e| e.to_string())?;
    let found: Exists =
        diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists")
            .bind::<Text, _>(name)
            .get_result(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
    if !found.exists {
        diesel::sql_query(format!("CREATE DATABASE {}", quote_ident(name)))
            .execute(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Creates database `name` as a copy of `template` (which must have no open connections).
pub async fn clone_database(admin_url: &str, template: &str, name: &str) -> Result<(), String> {
    let mut conn = AsyncPgConnection::establish(admin_url)
        .await
        .map_err(|e| e.to_string())?;
    diesel::sql_query(format!(
        "CREATE DATABASE {} TEMPLATE {}",
        quote_ident(name),
        quote_ident(template)
    ))
    .execute(&mut conn)
    .await
    .map(drop)
    .map_err(|e| e.to_string())
}

/// Drops database `name`, closing its connections first.
pub async fn drop_database(admin_url: &str, name: &str) -> Result<(), String> {
    let mut conn = AsyncPgConnection::establish(admin_url)
        .await
        .map_err(|e| e.to_string())?;
    diesel::sql_query(format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        quote_ident(name)
    ))
    .execute(&mut conn)
    .await
    .map(drop)
    .map_err(|e| e.to_string())
}

/// Replaces the database name in a `postgres://` URL, keeping credentials, host and parameters.
pub fn with_database(url: &str, name: &str) -> Result<String, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| "DATABASE_URL must be a postgres:// URL".to_owned())?;
    let (authority_and_path, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let authority = authority_and_path
        .split_once('/')
        .map_or(authority_and_path, |(a, _)| a);
    let mut out = format!("{scheme}://{authority}/{name}");
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_database_replaces_only_the_path() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/old?sslmode=disable", "new").unwrap(),
            "postgres://u:p@h:5432/new?sslmode=disable"
        );
        assert_eq!(
            with_database("postgresql://h", "new").unwrap(),
            "postgresql://h/new"
        );
        assert!(with_database("host=x dbname=y", "new").is_err());
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
