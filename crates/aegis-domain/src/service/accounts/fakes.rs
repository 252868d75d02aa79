//! In-memory fakes shared by the account use cases' unit tests.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{AccountService, AccountSettings};
use crate::clock::{ManualClock, UnixTime};
use crate::ids::{SiteId, UserId};
use crate::password::{MockPasswordHasher, Verification};
use crate::repo::{
    AccountTxRepository, MockAccountRepository, MockSiteRepository, QueuedEmail, RepoError,
    Transaction, UnitOfWork,
};
use crate::secrets::RandomSecretGenerator;
use crate::site::Site;
use crate::site::tests::{CountingGenerator, new_site};
use crate::templates::EmailKind;
use crate::token::{EmailChangeRequest, RefreshToken, StoredToken};
use crate::user::{Email, Role, User};
use crate::webhook::WebhookEvent;

/// What the transactions wrote (committed or not: these tests only check what was asked).
#[derive(Default)]
pub(super) struct Written {
    pub(super) users: Vec<User>,
    pub(super) email_changes: Vec<EmailChangeRequest>,
    pub(super) emails: Vec<QueuedEmail>,
}

/// A unit of work whose only stored user is `existing`, recording the writes.
#[derive(Clone, Default)]
pub(super) struct Recording {
    pub(super) existing: Option<User>,
    pub(super) written: Arc<Mutex<Written>>,
}

impl Recording {
    pub(super) fn emails(&self) -> Vec<(EmailKind, String)> {
        let written = self.written.lock().unwrap();
        written
            .emails
            .iter()
            .map(|e| (e.message.kind, e.message.to.clone()))
            .collect()
    }
}

#[async_trait]
impl UnitOfWork for Recording {
    async fn begin(&self) -> Result<Box<dyn Transaction>, RepoError> {
        Ok(Box::new(self.clone()))
    }
}

#[async_trait]
impl Transaction for Recording {
    fn sites(&mut self) -> &mut dyn crate::repo::SiteTxRepository {
        unreachable!("account use cases do not write sites")
    }
    fn accounts(&mut self) -> &mut dyn AccountTxRepository {
        self
    }
    async fn commit(self: Box<Self>) -> Result<(), RepoError> {
        Ok(())
    }
}

#[async_trait]
impl AccountTxRepository for Recording {
    async fn lock_user_by_email(
        &mut self,
        site: SiteId,
        email: &Email,
    ) -> Result<Option<User>, RepoError> {
        Ok(self
            .existing
            .clone()
            .filter(|u| u.site_id == site && u.email == *email))
    }
    async fn lock_user(&mut self, id: UserId) -> Result<Option<User>, RepoError> {
        Ok(self.existing.clone().filter(|u| u.id == id))
    }
    async fn insert_user(&mut self, user: &User) -> Result<(), RepoError> {
        self.written.lock().unwrap().users.push(user.clone());
        Ok(())
    }
    async fn update_user(&mut self, _: &User) -> Result<(), RepoError> {
        Ok(())
    }
    async fn replace_password_hash(
        &mut self,
        _: UserId,
        _: &str,
        _: &str,
        _: UnixTime,
    ) -> Result<bool, RepoError> {
        Ok(false)
    }
    async fn lock_refresh_token(&mut self, _: &str) -> Result<Option<RefreshToken>, RepoError> {
        Ok(None)
    }
    async fn delete_reset_request(&mut self, _: uuid::Uuid) -> Result<(), RepoError> {
        Ok(())
    }
    async fn delete_reset_requests_for(&mut self, _: SiteId, _: &Email) -> Result<u64, RepoError> {
        Ok(0)
    }
    async fn insert_auth_token(&mut self, _: &StoredToken) -> Result<(), RepoError> {
        Ok(())
    }
    async fn delete_auth_token(&mut self, _: &str) -> Result<bool, RepoError> {
        Ok(false)
    }
    async fn delete_auth_tokens_of_user(&mut self, _: UserId) -> Result<u64, RepoError> {
        Ok(0)
    }
    async fn insert_refresh_token(&mut self, _: &RefreshToken) -> Result<(), RepoError> {
        Ok(())
    }
    async fn claim_refresh_token(&mut self, _: &str, _: UnixTime) -> Result<bool, RepoError> {
        Ok(false)
    }
    async fn revoke_refresh_family(
        &mut self,
        _: &str,
        _: Option<UserId>,
    ) -> Result<u64, RepoError> {
        Ok(0)
    }
    async fn delete_refresh_tokens_of_user(&mut self, _: UserId) -> Result<u64, RepoError> {
        Ok(0)
    }
    async fn insert_reset_token(&mut self, _: &StoredToken) -> Result<(), RepoError> {
        Ok(())
    }
    async fn claim_reset_token(&mut self, _: &str) -> Result<bool, RepoError> {
        Ok(false)
    }
    async fn delete_reset_tokens_of_user(&mut self, _: UserId) -> Result<u64, RepoError> {
        Ok(0)
    }
    async fn insert_email_change(&mut self, request: &EmailChangeRequest) -> Result<(), RepoError> {
        self.written
            .lock()
            .unwrap()
            .email_changes
            .push(request.clone());
        Ok(())
    }
    async fn take_email_change(&mut self, _: &str) -> Result<bool, RepoError> {
        Ok(false)
    }
    async fn delete_email_changes_of_user(&mut self, _: UserId) -> Result<u64, RepoError> {
        Ok(0)
    }
    async fn email_taken(
        &mut self,
        _: SiteId,
        _: &Email,
        _: Option<UserId>,
    ) -> Result<bool, RepoError> {
        Ok(false)
    }
    async fn count_admins(&mut self, _: SiteId) -> Result<i64, RepoError> {
        Ok(0)
    }
    async fn delete_user_guarded(&mut self, _: UserId) -> Result<bool, RepoError> {
        Ok(false)
    }
    async fn insert_verification_token(&mut self, _: &StoredToken) -> Result<(), RepoError> {
        Ok(())
    }
    async fn take_verification_token(&mut self, _: &str) -> Result<bool, RepoError> {
        Ok(false)
    }
    async fn delete_verification_tokens_of_user(&mut self, _: UserId) -> Result<u64, RepoError> {
        Ok(0)
    }
    async fn enqueue_email(&mut self, email: &QueuedEmail) -> Result<(), RepoError> {
        self.written.lock().unwrap().emails.push(email.clone());
        Ok(())
    }
    async fn enqueue_webhook(&mut self, _: &WebhookEvent) -> Result<(), RepoError> {
        Ok(())
    }
}

pub(super) fn email(raw: &str) -> Email {
    Email::parse(raw).unwrap()
}

pub(super) fn site() -> Site {
    Site::create(new_site(None), 1, &CountingGenerator::default())
}

pub(super) fn user_of(site: &Site, address: &str) -> User {
    User::new(
        UserId::from_uuid(uuid::Uuid::from_u128(7)),
        site.id,
        email(address),
        Some("$argon2id$stored".into()),
        Role::User,
        1,
    )
}

pub(super) fn service(
    accounts: MockAccountRepository,
    sites: MockSiteRepository,
    uow: &Recording,
) -> AccountService {
    let mut hasher = MockPasswordHasher::new();
    hasher
        .expect_hash()
        .returning(|_| Ok("$argon2id$new".into()));
    hasher.expect_verify().returning(|_, _| {
        Ok(Verification::Match {
            needs_rehash: false,
        })
    });
    AccountService::new(
        Arc::new(accounts),
        Arc::new(sites),
        Arc::new(uow.clone()),
        Arc::new(hasher),
        Arc::new(ManualClock::new(1_000)),
        Arc::new(RandomSecretGenerator),
        AccountSettings::default(),
    )
}

pub(super) const NORMAL: &str = "jos\u{e9}@xn--bcher-kva.de";
pub(super) const TYPED: &str = "JOSE\u{301}@B\u{dc}CHER.de";
