use std::sync::Arc;

use aegis_domain::{
    DeleteSiteError, ManualClock, NewSite, RandomSecretGenerator, SiteId, SitePatch, SiteService,
    UpdateSiteError,
};
use aegis_postgres::{PgSiteRepository, PgUnitOfWork};
use aegis_test_support::fresh_database;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

use crate::pool;

fn new_site(domain: &str) -> NewSite {
    NewSite {
        name: "Example".into(),
        domain: domain.into(),
        frontend_url: "https://app.example.com".into(),
        verification_redirect_url: None,
        email_from: aegis_domain::user::Email::parse("noreply@example.com").unwrap(),
        email_from_name: "Example".into(),
        allow_self_registration: true,
        webhook_url: Some("https://hooks.example.com/in".into()),
        mailgun_domain: None,
        mailgun_api_key: None,
    }
}

fn service(url: &str, clock: ManualClock) -> SiteService {
    let pool = pool(url);
    SiteService::new(
        Arc::new(PgSiteRepository::new(pool.clone())),
        Arc::new(PgUnitOfWork::new(pool, crate::keys())),
        Arc::new(clock),
        Arc::new(RandomSecretGenerator),
    )
}

#[tokio::test]
async fn sites_round_trip_through_the_database() {
    let db = fresh_database().await;
    let clock = ManualClock::new(1_000);
    let svc = service(db.url(), clock.clone());
    let first = svc.create(new_site("One.example.com")).await.unwrap();
    clock.advance(5);
    let second = svc.create(new_site("two.example.com")).await.unwrap();

    assert_eq!(svc.get(first.id).await.unwrap(), Some(first.clone()));
    assert_eq!(
        svc.get_by_domain("ONE.EXAMPLE.COM").await.unwrap(),
        Some(first.clone())
    );
    let listed: Vec<SiteId> = svc.list().await.unwrap().iter().map(|s| s.id).collect();
    assert_eq!(listed, [second.id, first.id], "newest first");
    assert_eq!(
        svc.get(SiteId::from_uuid(uuid::Uuid::nil())).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn duplicate_domains_are_refused_on_create_and_update() {
    let db = fresh_database().await;
    let svc = service(db.url(), ManualClock::new(1));
    svc.create(new_site("taken.example.com")).await.unwrap();
    assert!(matches!(
        svc.create(new_site("TAKEN.example.com")).await,
        Err(aegis_domain::CreateSiteError::DomainTaken)
    ));
    let other = svc.create(new_site("other.example.com")).await.unwrap();
    let patch = SitePatch {
        domain: Some("taken.example.com".into()),
        ..SitePatch::default()
    };
    assert!(matches!(
        svc.update(other.id, patch).await,
        Err(UpdateSiteError::DomainTaken)
    ));
    assert_eq!(
        svc.get(other.id).await.unwrap().unwrap().domain,
        "other.example.com"
    );
}

#[tokio::test]
async fn update_writes_every_field_including_nulls() {
    let db = fresh_database().await;
    let clock = ManualClock::new(1);
    let svc = service(db.url(), clock.clone());
    let site = svc.create(new_site("a.example.com")).await.unwrap();
    clock.set(50);
    let patch = SitePatch {
        webhook_url: Some(None),
        mailgun_domain: Some(Some("mg.example.com".into())),
        deletion_protected: Some(true),
        ..SitePatch::default()
    };
    let updated = svc.update(site.id, patch).await.unwrap();
    let stored = svc.get(site.id).await.unwrap().unwrap();
    assert_eq!(stored, updated);
    assert_eq!(stored.webhook_url, None);
    assert_eq!(stored.webhook_secret, None);
    assert_eq!(stored.mailgun_domain.as_deref(), Some("mg.example.com"));
    assert!(stored.deletion_protected);
    assert_eq!((stored.created_at, stored.updated_at), (1, 50));
}

#[tokio::test]
async fn delete_refuses_protected_sites_and_sites_with_protected_users() {
    let db = fresh_database().await;
    let svc = service(db.url(), ManualClock::new(1));
    let site = svc.create(new_site("a.example.com")).await.unwrap();
    let mut conn = AsyncPgConnection::establish(db.url()).await.unwrap();
    conn.batch_execute(&format!(
        "INSERT INTO users (uuid, site_uuid, email, created_at, updated_at, deletion_protected) VALUES \
         ('0191e1a0-0000-7000-8000-0000000000a1', '{0}', 'p@example.com', 1, 1, true), \
         ('0191e1a0-0000-7000-8000-0000000000a2', '{0}', 'q@example.com', 1, 1, false)",
        site.id
    ))
    .await
    .unwrap();
    assert!(matches!(
        svc.delete(site.id).await,
        Err(DeleteSiteError::HasProtectedUsers(1))
    ));
    conn.batch_execute("UPDATE users SET deletion_protected = false")
        .await
        .unwrap();
    svc.delete(site.id).await.unwrap();
    assert_eq!(svc.get(site.id).await.unwrap(), None);
    assert!(matches!(
        svc.delete(site.id).await,
        Err(DeleteSiteError::NotFound)
    ));
}

/// The guard inside the DELETE statement holds even when a protection appears after the checks.
#[tokio::test]
async fn the_delete_statement_refuses_a_protection_that_appeared_after_the_checks() {
    use aegis_domain::UnitOfWork as _;

    let db = fresh_database().await;
    let svc = service(db.url(), ManualClock::new(1));
    let site = svc.create(new_site("race.example.com")).await.unwrap();
    let mut other = AsyncPgConnection::establish(db.url()).await.unwrap();
    other
        .batch_execute(&format!(
            "INSERT INTO users (uuid, site_uuid, email, created_at, updated_at) \
             VALUES ('0191e1a0-0000-7000-8000-0000000000c1', '{}', 'late@example.com', 1, 1)",
            site.id
        ))
        .await
        .unwrap();
    let uow = PgUnitOfWork::new(pool(db.url()), crate::keys());

    let mut tx = uow.begin().await.unwrap();
    assert!(tx.sites().lock_for_delete(site.id).await.unwrap().is_some());
    assert_eq!(tx.sites().count_protected_users(site.id).await.unwrap(), 0);

    // Another session protects the user in between.
    other
        .batch_execute("UPDATE users SET deletion_protected = true")
        .await
        .unwrap();

    assert!(!tx.sites().delete_unprotected(site.id).await.unwrap());
    tx.commit().await.unwrap();
    assert!(svc.get(site.id).await.unwrap().is_some());
}

/// Locking a site for an update does not hold up new users of that site.
#[tokio::test]
async fn an_update_lock_does_not_block_new_users() {
    use aegis_domain::UnitOfWork as _;

    let db = fresh_database().await;
    let svc = service(db.url(), ManualClock::new(1));
    let site = svc.create(new_site("busy.example.com")).await.unwrap();
    let uow = PgUnitOfWork::new(pool(db.url()), crate::keys());
    let mut tx = uow.begin().await.unwrap();
    assert!(tx.sites().lock(site.id).await.unwrap().is_some());
    let mut other = AsyncPgConnection::establish(db.url()).await.unwrap();
    let statement = format!(
        "INSERT INTO users (uuid, site_uuid, email, created_at, updated_at) \
         VALUES ('0191e1a0-0000-7000-8000-0000000000c2', '{}', 'new@example.com', 1, 1)",
        site.id
    );
    let insert = other.batch_execute(&statement);
    tokio::time::timeout(std::time::Duration::from_secs(10), insert)
        .await
        .expect("the insert was not blocked")
        .unwrap();
    tx.commit().await.unwrap();
}

/// A transaction dropped without commit is rolled back: its change is gone and its row lock is
/// released, so the next update of the same row, on the same pool, goes through.
#[tokio::test]
async fn a_dropped_transaction_rolls_back_and_releases_its_locks() {
    use aegis_domain::UnitOfWork as _;

    let db = fresh_database().await;
    let pool = pool(db.url());
    let svc = SiteService::new(
        Arc::new(PgSiteRepository::new(pool.clone())),
        Arc::new(PgUnitOfWork::new(pool.clone(), crate::keys())),
        Arc::new(ManualClock::new(1)),
        Arc::new(RandomSecretGenerator),
    );
    let mut site = svc.create(new_site("rollback.example.com")).await.unwrap();
    {
        let mut tx = PgUnitOfWork::new(pool.clone(), crate::keys())
            .begin()
            .await
            .unwrap();
        let mut locked = tx.sites().lock(site.id).await.unwrap().unwrap();
        locked.name = "Changed".into();
        tx.sites().update(&locked).await.unwrap();
    }
    let patch = SitePatch {
        email_from_name: Some("After".into()),
        ..SitePatch::default()
    };
    let updated = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        svc.update(site.id, patch),
    )
    .await
    .expect("the dropped transaction's lock was released")
    .unwrap();
    site.email_from_name = "After".into();
    assert_eq!(updated.name, "Example");
    assert_eq!(updated.email_from_name, "After");
}
