//! Fakes shared by the account use cases' unit tests: a unit of work that answers from a script
//! and records every call it gets, and a builder for a service over mocks and that unit of work.

use std::future::Future;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures_util::FutureExt as _;

use super::{AccountService, AccountSettings};
use crate::clock::{ManualClock, UnixTime};
use crate::ids::{SiteId, UserId};
use crate::password::{MockPasswordHasher, Verification};
use crate::repo::{
    AccountTxRepository, MockAccountRepository, MockSiteRepository, QueuedEmail, RepoError,
    SiteTxRepository, Transaction, UnitOfWork,
};
use crate::site::Site;
use crate::site::tests::{CountingGenerator, new_site};
use crate::templates::EmailKind;
use crate::token::{EmailChangeRequest, RefreshToken, StoredToken};
use crate::user::{Email, Role, User};
use crate::webhook::WebhookEvent;

/// The time every test runs at.
pub(crate) const NOW: UnixTime = 1_000;
/// The hash every test user's password is stored as.
pub(crate) const STORED_HASH: &str = "$argon2id$stored";
/// What the mocked hasher hashes every password to.
pub(crate) const NEW_HASH: &str = "$argon2id$new";
/// An address in Aegis's normal form.
pub(crate) const NORMAL: &str = "jos\u{e9}@xn--bcher-kva.de";
/// [`NORMAL`] as a client might type it.
pub(crate) const TYPED: &str = "JOSE\u{301}@B\u{dc}CHER.de";

/// One call a transaction got, in order. Locking reads are recorded too, so that tests can check
/// the order rows are locked in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Call {
    Begin,
    LockSite(SiteId),
    HoldSite(SiteId),
    LockUserByEmail(SiteId, Email),
    LockUser(UserId),
    InsertUser(User),
    UpdateUser(User),
    ReplacePasswordHash {
        user: UserId,
        expected: String,
        new: String,
    },
    InsertAuthToken(StoredToken),
    DeleteAuthToken(String),
    DeleteAuthTokensOfUser(UserId),
    InsertRefreshToken(RefreshToken),
    LockRefreshToken(String),
    ClaimRefreshToken(String, UnixTime),
    RevokeRefreshFamily(String, Option<UserId>),
    DeleteRefreshTokensOfUser(UserId),
    InsertResetToken(StoredToken),
    ClaimResetToken(String),
    DeleteResetRequest(uuid::Uuid),
    DeleteResetRequestsFor(SiteId, Email),
    DeleteResetTokensOfUser(UserId),
    InsertEmailChange(EmailChangeRequest),
    TakeEmailChange(String),
    DeleteEmailChangesOfUser(UserId),
    EmailTaken(SiteId, Email, Option<UserId>),
    InsertVerificationToken(StoredToken),
    TakeVerificationToken(String),
    DeleteVerificationTokensOfUser(UserId),
    EnqueueEmail(QueuedEmail),
    EnqueueWebhook(WebhookEvent),
    CountAdmins(SiteId),
    DeleteUserGuarded(UserId),
    Commit,
}

impl Call {
    /// Whether the call changes what is stored (a commit does not count: it only makes the
    /// writes before it durable).
    pub(crate) fn is_write(&self) -> bool {
        !matches!(
            self,
            Self::Begin
                | Self::LockSite(_)
                | Self::HoldSite(_)
                | Self::LockUserByEmail(..)
                | Self::LockUser(_)
                | Self::LockRefreshToken(_)
                | Self::EmailTaken(..)
                | Self::CountAdmins(_)
                | Self::Commit
        )
    }
}

/// How the conditional calls of a transaction answer. All `false` or zero by default: nothing taken,
/// claimed or in use, and no conflict.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Answers {
    /// `begin` fails with [`RepoError::Unavailable`].
    pub(crate) begin_fails: bool,
    /// `insert_user` fails with [`RepoError::Conflict`], as a concurrent insert makes it.
    pub(crate) insert_user_conflicts: bool,
    /// `update_user` fails with [`RepoError::Conflict`].
    pub(crate) update_user_conflicts: bool,
    /// `take_verification_token` removes the token.
    pub(crate) verification_token_taken: bool,
    /// `claim_refresh_token` wins the claim.
    pub(crate) refresh_token_claimed: bool,
    /// `claim_reset_token` wins the claim.
    pub(crate) reset_token_claimed: bool,
    /// `take_email_change` removes the request.
    pub(crate) email_change_taken: bool,
    /// `email_taken` says another user has the address.
    pub(crate) email_in_use: bool,
    /// `delete_auth_token` found the token.
    pub(crate) auth_token_deleted: bool,
    /// `replace_password_hash` found the expected hash.
    pub(crate) password_hash_replaced: bool,
    /// What `count_admins` answers.
    pub(crate) admins: i64,
    /// `delete_user_guarded` finds a guard and deletes nothing, as a concurrent change makes it.
    pub(crate) delete_refused: bool,
}

/// A unit of work whose only stored user is `existing`, whose only site is `site` and whose only
/// refresh token is `refresh_token`, answering the rest from `answers`. Every transaction it
/// begins shares one record of calls: what was asked, committed or not.
#[derive(Clone, Default)]
pub(crate) struct Recording {
    pub(crate) existing: Option<User>,
    pub(crate) site: Option<Site>,
    pub(crate) refresh_token: Option<RefreshToken>,
    pub(crate) answers: Answers,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Recording {
    fn record(&self, call: Call) {
        self.calls.lock().unwrap().push(call);
    }

    /// Every call so far, in order.
    pub(crate) fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// The calls so far that write, in order.
    pub(crate) fn writes(&self) -> Vec<Call> {
        self.calls().into_iter().filter(Call::is_write).collect()
    }

    /// Whether a transaction was begun.
    pub(crate) fn began(&self) -> bool {
        self.calls().contains(&Call::Begin)
    }

    /// Whether a transaction was committed.
    pub(crate) fn committed(&self) -> bool {
        self.calls().contains(&Call::Commit)
    }

    /// Asserts that nothing was written and nothing committed: the use case changed nothing.
    #[track_caller]
    pub(crate) fn assert_untouched(&self) {
        assert_eq!(self.writes(), [], "nothing written");
        assert!(!self.committed(), "nothing committed");
    }

    /// The emails queued: their kind and recipient.
    pub(crate) fn emails(&self) -> Vec<(EmailKind, String)> {
        self.queued()
            .iter()
            .map(|e| (e.message.kind, e.message.to.clone()))
            .collect()
    }

    /// The emails queued.
    pub(crate) fn queued(&self) -> Vec<QueuedEmail> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::EnqueueEmail(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    /// The users inserted.
    pub(crate) fn inserted_users(&self) -> Vec<User> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::InsertUser(u) => Some(u),
                _ => None,
            })
            .collect()
    }

    /// The verification tokens stored.
    pub(crate) fn verification_tokens(&self) -> Vec<StoredToken> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::InsertVerificationToken(t) => Some(t),
                _ => None,
            })
            .collect()
    }

    /// The email-change requests stored.
    pub(crate) fn email_changes(&self) -> Vec<EmailChangeRequest> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::InsertEmailChange(r) => Some(r),
                _ => None,
            })
            .collect()
    }
}

#[async_trait]
impl UnitOfWork for Recording {
    async fn begin(&self) -> Result<Box<dyn Transaction>, RepoError> {
        if self.answers.begin_fails {
            return Err(RepoError::Unavailable("fake outage".into()));
        }
        self.record(Call::Begin);
        Ok(Box::new(self.clone()))
    }
}

#[async_trait]
impl Transaction for Recording {
    fn sites(&mut self) -> &mut dyn SiteTxRepository {
        self
    }
    fn accounts(&mut self) -> &mut dyn AccountTxRepository {
        self
    }
    async fn commit(self: Box<Self>) -> Result<(), RepoError> {
        self.record(Call::Commit);
        Ok(())
    }
}

#[async_trait]
impl SiteTxRepository for Recording {
    async fn lock(&mut self, id: SiteId) -> Result<Option<Site>, RepoError> {
        self.record(Call::LockSite(id));
        Ok(self.site.clone().filter(|s| s.id == id))
    }
    async fn hold(&mut self, id: SiteId) -> Result<Option<Site>, RepoError> {
        self.record(Call::HoldSite(id));
        Ok(self.site.clone().filter(|s| s.id == id))
    }
    async fn lock_for_delete(&mut self, _: SiteId) -> Result<Option<Site>, RepoError> {
        unreachable!("account use cases only hold sites")
    }
    async fn update(&mut self, _: &Site) -> Result<(), RepoError> {
        unreachable!("account use cases do not write sites")
    }
    async fn count_protected_users(&mut self, _: SiteId) -> Result<i64, RepoError> {
        unreachable!("account use cases do not count protected users")
    }
    async fn delete_unprotected(&mut self, _: SiteId) -> Result<bool, RepoError> {
        unreachable!("account use cases do not delete sites")
    }
}

#[async_trait]
impl AccountTxRepository for Recording {
    async fn lock_user_by_email(
        &mut self,
        site: SiteId,
        email: &Email,
    ) -> Result<Option<User>, RepoError> {
        self.record(Call::LockUserByEmail(site, email.clone()));
        Ok(self
            .existing
            .clone()
            .filter(|u| u.site_id == site && u.email == *email))
    }
    async fn lock_user(&mut self, id: UserId) -> Result<Option<User>, RepoError> {
        self.record(Call::LockUser(id));
        Ok(self.existing.clone().filter(|u| u.id == id))
    }
    async fn insert_user(&mut self, user: &User) -> Result<(), RepoError> {
        self.record(Call::InsertUser(user.clone()));
        if self.answers.insert_user_conflicts {
            return Err(RepoError::Conflict("users_site_id_email_key".into()));
        }
        Ok(())
    }
    async fn update_user(&mut self, user: &User) -> Result<(), RepoError> {
        self.record(Call::UpdateUser(user.clone()));
        if self.answers.update_user_conflicts {
            return Err(RepoError::Conflict("users_site_id_email_key".into()));
        }
        Ok(())
    }
    async fn replace_password_hash(
        &mut self,
        user: UserId,
        expected: &str,
        new: &str,
        _: UnixTime,
    ) -> Result<bool, RepoError> {
        self.record(Call::ReplacePasswordHash {
            user,
            expected: expected.to_owned(),
            new: new.to_owned(),
        });
        Ok(self.answers.password_hash_replaced)
    }
    async fn lock_refresh_token(
        &mut self,
        digest: &str,
    ) -> Result<Option<RefreshToken>, RepoError> {
        self.record(Call::LockRefreshToken(digest.to_owned()));
        Ok(self.refresh_token.clone().filter(|t| t.digest == digest))
    }
    async fn delete_reset_request(&mut self, id: uuid::Uuid) -> Result<(), RepoError> {
        self.record(Call::DeleteResetRequest(id));
        Ok(())
    }
    async fn delete_reset_requests_for(
        &mut self,
        site: SiteId,
        email: &Email,
    ) -> Result<u64, RepoError> {
        self.record(Call::DeleteResetRequestsFor(site, email.clone()));
        Ok(0)
    }
    async fn insert_auth_token(&mut self, token: &StoredToken) -> Result<(), RepoError> {
        self.record(Call::InsertAuthToken(token.clone()));
        Ok(())
    }
    async fn delete_auth_token(&mut self, digest: &str) -> Result<bool, RepoError> {
        self.record(Call::DeleteAuthToken(digest.to_owned()));
        Ok(self.answers.auth_token_deleted)
    }
    async fn delete_auth_tokens_of_user(&mut self, user: UserId) -> Result<u64, RepoError> {
        self.record(Call::DeleteAuthTokensOfUser(user));
        Ok(0)
    }
    async fn insert_refresh_token(&mut self, token: &RefreshToken) -> Result<(), RepoError> {
        self.record(Call::InsertRefreshToken(token.clone()));
        Ok(())
    }
    async fn claim_refresh_token(
        &mut self,
        digest: &str,
        now: UnixTime,
    ) -> Result<bool, RepoError> {
        self.record(Call::ClaimRefreshToken(digest.to_owned(), now));
        Ok(self.answers.refresh_token_claimed)
    }
    async fn revoke_refresh_family(
        &mut self,
        family_id: &str,
        user: Option<UserId>,
    ) -> Result<u64, RepoError> {
        self.record(Call::RevokeRefreshFamily(family_id.to_owned(), user));
        Ok(0)
    }
    async fn delete_refresh_tokens_of_user(&mut self, user: UserId) -> Result<u64, RepoError> {
        self.record(Call::DeleteRefreshTokensOfUser(user));
        Ok(0)
    }
    async fn insert_reset_token(&mut self, token: &StoredToken) -> Result<(), RepoError> {
        self.record(Call::InsertResetToken(token.clone()));
        Ok(())
    }
    async fn claim_reset_token(&mut self, digest: &str) -> Result<bool, RepoError> {
        self.record(Call::ClaimResetToken(digest.to_owned()));
        Ok(self.answers.reset_token_claimed)
    }
    async fn delete_reset_tokens_of_user(&mut self, user: UserId) -> Result<u64, RepoError> {
        self.record(Call::DeleteResetTokensOfUser(user));
        Ok(0)
    }
    async fn insert_email_change(&mut self, request: &EmailChangeRequest) -> Result<(), RepoError> {
        self.record(Call::InsertEmailChange(request.clone()));
        Ok(())
    }
    async fn take_email_change(&mut self, digest: &str) -> Result<bool, RepoError> {
        self.record(Call::TakeEmailChange(digest.to_owned()));
        Ok(self.answers.email_change_taken)
    }
    async fn delete_email_changes_of_user(&mut self, user: UserId) -> Result<u64, RepoError> {
        self.record(Call::DeleteEmailChangesOfUser(user));
        Ok(0)
    }
    async fn email_taken(
        &mut self,
        site: SiteId,
        email: &Email,
        except: Option<UserId>,
    ) -> Result<bool, RepoError> {
        self.record(Call::EmailTaken(site, email.clone(), except));
        Ok(self.answers.email_in_use)
    }
    async fn count_admins(&mut self, site: SiteId) -> Result<i64, RepoError> {
        self.record(Call::CountAdmins(site));
        Ok(self.answers.admins)
    }
    async fn delete_user_guarded(&mut self, id: UserId) -> Result<bool, RepoError> {
        self.record(Call::DeleteUserGuarded(id));
        Ok(!self.answers.delete_refused)
    }
    async fn insert_verification_token(&mut self, token: &StoredToken) -> Result<(), RepoError> {
        self.record(Call::InsertVerificationToken(token.clone()));
        Ok(())
    }
    async fn take_verification_token(&mut self, digest: &str) -> Result<bool, RepoError> {
        self.record(Call::TakeVerificationToken(digest.to_owned()));
        Ok(self.answers.verification_token_taken)
    }
    async fn delete_verification_tokens_of_user(&mut self, user: UserId) -> Result<u64, RepoError> {
        self.record(Call::DeleteVerificationTokensOfUser(user));
        Ok(0)
    }
    async fn enqueue_email(&mut self, email: &QueuedEmail) -> Result<(), RepoError> {
        self.record(Call::EnqueueEmail(email.clone()));
        Ok(())
    }
    async fn enqueue_webhook(&mut self, event: &WebhookEvent) -> Result<(), RepoError> {
        self.record(Call::EnqueueWebhook(event.clone()));
        Ok(())
    }
}

/// The ports of a service under test. The mocks start without expectations, so any call a test
/// did not expect fails it; the unit of work starts empty.
pub(crate) struct Ports {
    pub(crate) accounts: MockAccountRepository,
    pub(crate) sites: MockSiteRepository,
    pub(crate) hasher: MockPasswordHasher,
    pub(crate) uow: Recording,
    pub(crate) settings: AccountSettings,
}

impl Ports {
    pub(crate) fn new() -> Self {
        Self {
            accounts: MockAccountRepository::new(),
            sites: MockSiteRepository::new(),
            hasher: MockPasswordHasher::new(),
            uow: Recording::default(),
            settings: AccountSettings::default(),
        }
    }

    /// Expects exactly `times` hashes, each giving [`NEW_HASH`].
    pub(crate) fn expect_hashes(&mut self, times: usize) {
        self.hasher
            .expect_hash()
            .times(times)
            .returning(|_| Ok(NEW_HASH.into()));
    }

    /// Expects exactly one verification, of `password` against `stored`, answering `outcome`.
    pub(crate) fn expect_verification(
        &mut self,
        password: &str,
        stored: Option<&str>,
        outcome: Verification,
    ) {
        let (password, stored) = (password.to_owned(), stored.map(str::to_owned));
        self.hasher
            .expect_verify()
            .withf(move |p, s| p.expose() == password && *s == stored)
            .times(1)
            .returning(move |_, _| Ok(outcome));
    }

    /// The service over these ports, at [`NOW`], with deterministic identifiers and tokens. The
    /// unit of work is shared: keep a clone to read what it recorded.
    pub(crate) fn service(self) -> AccountService {
        AccountService::new(
            Arc::new(self.accounts),
            Arc::new(self.sites),
            Arc::new(self.uow),
            Arc::new(self.hasher),
            Arc::new(ManualClock::new(NOW)),
            Arc::new(CountingGenerator::default()),
            self.settings,
        )
    }
}

/// Runs a use case to completion: every fake answers at once, so it never waits.
pub(crate) fn run<F: Future>(future: F) -> F::Output {
    future.now_or_never().expect("the fakes never wait")
}

pub(crate) fn email(raw: &str) -> Email {
    Email::parse(raw).unwrap()
}

/// A site with self-registration and no webhook.
pub(crate) fn site() -> Site {
    Site::create(new_site(None), 1, &CountingGenerator::default())
}

/// A site that is not [`site`].
pub(crate) fn other_site() -> Site {
    let mut other = site();
    other.id = SiteId::from_uuid(uuid::Uuid::from_u128(99));
    other
}

/// A site with a webhook configured, so user events are queued.
pub(crate) fn webhook_site() -> Site {
    Site::create(
        new_site(Some("https://hooks.example.com/aegis")),
        1,
        &CountingGenerator::default(),
    )
}

/// A self-registered user of `site` whose password is [`STORED_HASH`], not verified yet.
pub(crate) fn user_of(site: &Site, address: &str) -> User {
    User::new(
        UserId::from_uuid(uuid::Uuid::from_u128(7)),
        site.id,
        email(address),
        Some(STORED_HASH.into()),
        Role::User,
        1,
    )
}

/// A verified user of `site` whose password is [`STORED_HASH`].
pub(crate) fn verified_user(site: &Site) -> User {
    User {
        is_verified: true,
        ..user_of(site, "me@example.com")
    }
}

/// An invited user of `site`: no password, not verified.
pub(crate) fn invited_user(site: &Site) -> User {
    User {
        password_hash: None,
        ..user_of(site, "invited@example.com")
    }
}

/// A stored single-use token of `user`, presented as `presented`, expiring at `expires_at`.
pub(crate) fn stored_token(user: &User, presented: &str, expires_at: UnixTime) -> StoredToken {
    StoredToken {
        digest: crate::token::digest(presented),
        site_id: user.site_id,
        user_id: user.id,
        expires_at,
        created_at: 1,
    }
}
