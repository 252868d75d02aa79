//! Passwords: change with the old one, reset through a mailed link.

use super::{AccountService, Failure, Link};
use crate::password::{HashError, Verification};
use crate::repo::RepoError;
use crate::site::Site;
use crate::token::{self, ResetRequest};
use crate::user::{Email, PlainPassword, User};

/// Why [`AccountService::change_password`] refused.
#[derive(Debug, thiserror::Error)]
pub enum ChangePasswordError {
    /// The old password does not match (or there is none), or the password was replaced
    /// between the check and the change.
    #[error("incorrect password")]
    IncorrectPassword,
    /// The user no longer exists.
    #[error("user not found")]
    UserNotFound,
    /// Storage or hashing failed.
    #[error(transparent)]
    Failure(#[from] Failure),
}

/// Why [`AccountService::reset_password`] refused.
#[derive(Debug, thiserror::Error)]
pub enum ResetPasswordError {
    /// The token is unknown, used, expired or of another site, or its user is gone.
    #[error("invalid or expired reset token")]
    InvalidToken,
    /// Storage or hashing failed.
    #[error(transparent)]
    Failure(#[from] Failure),
}

failure_from!(ChangePasswordError, ResetPasswordError);

impl AccountService {
    /// change-password. A wrong old password, no password, or an unusable stored hash is
    /// "incorrect" (decision 16).
    pub async fn change_password(
        &self,
        user: &User,
        old: &PlainPassword,
        new: &PlainPassword,
    ) -> Result<User, ChangePasswordError> {
        let verification = self.hasher.verify(old, user.password_hash.clone()).await?;
        if verification == Verification::NoMatch {
            return Err(ChangePasswordError::IncorrectPassword);
        }
        let hash = self.hasher.hash(new).await?;
        let now = self.clock.now();
        let mut tx = self.uow.begin().await?;
        let verified_hash = user.password_hash.clone();
        let mut user = tx
            .accounts()
            .lock_user(user.id)
            .await?
            .ok_or(ChangePasswordError::UserNotFound)?;
        // The old password was checked against this hash: if a reset or another change replaced
        // it meanwhile, the check no longer stands.
        if user.password_hash != verified_hash {
            return Err(ChangePasswordError::IncorrectPassword);
        }
        self.replace_password(&mut tx, &mut user, hash, now).await?;
        tx.commit().await?;
        Ok(user)
    }

    /// request-password-reset: records the request and returns. Whether the address has
    /// an account, and the link if it does, are worked out by [`Self::process_reset_requests`]
    /// off the request path, so the answer takes the same time either way.
    pub async fn request_password_reset(&self, site: &Site, email: &Email) -> Result<(), Failure> {
        self.accounts
            .record_reset_request(&ResetRequest {
                id: self.generator.new_id(),
                site_id: site.id,
                email: email.clone(),
                created_at: self.clock.now(),
            })
            .await?;
        Ok(())
    }

    /// Handles up to `batch` recorded reset requests: a reset link for each one naming an
    /// existing user of its site, verified or not; nothing for an unknown address. Older reset
    /// links stay valid. Each request is claimed for a minute first, then handled in a
    /// transaction of its own that locks, in order, the site (against its deletion) and the user,
    /// as every credential change does, and deletes the request. Returns how many were handled.
    pub async fn process_reset_requests(&self, batch: i64) -> Result<usize, RepoError> {
        const CLAIM_SECONDS: i64 = 60;
        let now = self.clock.now();
        let requests = self
            .accounts
            .claim_reset_requests(batch, now, now + CLAIM_SECONDS)
            .await?;
        for request in &requests {
            let mut tx = self.uow.begin().await?;
            if let Some(site) = tx.sites().hold(request.site_id).await?
                && let Some(user) = tx
                    .accounts()
                    .lock_user_by_email(site.id, &request.email)
                    .await?
            {
                self.send_link(&mut tx, &site, &user, Link::PasswordReset, now)
                    .await?;
            }
            tx.accounts().delete_reset_request(request.id).await?;
            tx.commit().await?;
        }
        Ok(requests.len())
    }

    /// reset-password. The token's site is checked before it is consumed, so a cross-site
    /// attempt burns nothing (decision 12).
    pub async fn reset_password(
        &self,
        site: &Site,
        presented: &str,
        new: &PlainPassword,
    ) -> Result<User, ResetPasswordError> {
        let now = self.clock.now();
        let digest = token::digest(presented);
        let stored = self
            .accounts
            .find_reset_token(&digest)
            .await?
            .filter(|t| !t.used && token::is_live(t.token.expires_at, now))
            .ok_or(ResetPasswordError::InvalidToken)?;
        let owner = self
            .accounts
            .find_user(stored.token.user_id)
            .await?
            .filter(|u| u.site_id == site.id)
            .ok_or(ResetPasswordError::InvalidToken)?;
        let hash = self.hasher.hash(new).await?;
        let mut tx = self.uow.begin().await?;
        // The user first, then the token, as every credential change locks them.
        let mut user = tx
            .accounts()
            .lock_user(owner.id)
            .await?
            .ok_or(ResetPasswordError::InvalidToken)?;
        if !tx.accounts().claim_reset_token(&digest).await? {
            return Err(ResetPasswordError::InvalidToken);
        }
        self.replace_password(&mut tx, &mut user, hash, now).await?;
        tx.commit().await?;
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fakes::{
        Call, NEW_HASH, NOW, Ports, STORED_HASH, email, other_site, run, site, stored_token,
        user_of, verified_user,
    };
    use super::*;
    use crate::templates::EmailKind;
    use crate::token::ResetToken;

    const MATCH: Verification = Verification::Match {
        needs_rehash: false,
    };

    fn old() -> PlainPassword {
        PlainPassword::new("old".into())
    }

    fn new() -> PlainPassword {
        PlainPassword::new("new".into())
    }

    /// What replacing `user`'s password writes: the new hash, then the end of every session and
    /// pending credential flow, verification aside.
    fn replacement(user: &User) -> Vec<Call> {
        let replaced = User {
            password_hash: Some(NEW_HASH.into()),
            updated_at: NOW,
            ..user.clone()
        };
        vec![
            Call::UpdateUser(replaced),
            Call::DeleteAuthTokensOfUser(user.id),
            Call::DeleteRefreshTokensOfUser(user.id),
            Call::DeleteResetTokensOfUser(user.id),
            Call::DeleteResetRequestsFor(user.site_id, user.email.clone()),
            Call::DeleteEmailChangesOfUser(user.id),
        ]
    }

    #[test]
    fn a_wrong_old_password_is_incorrect_and_nothing_is_hashed() {
        let user = verified_user(&site());
        let mut ports = Ports::new();
        ports.expect_verification("old", Some(STORED_HASH), Verification::NoMatch);
        ports.expect_hashes(0);
        let uow = ports.uow.clone();
        assert!(matches!(
            run(ports.service().change_password(&user, &old(), &new())),
            Err(ChangePasswordError::IncorrectPassword)
        ));
        assert_eq!(uow.calls(), []);
    }

    #[test]
    fn changing_the_password_of_an_account_without_one_is_incorrect() {
        let user = User {
            password_hash: None,
            ..verified_user(&site())
        };
        let mut ports = Ports::new();
        ports.expect_verification("old", None, Verification::NoMatch);
        ports.expect_hashes(0);
        assert!(matches!(
            run(ports.service().change_password(&user, &old(), &new())),
            Err(ChangePasswordError::IncorrectPassword)
        ));
    }

    #[test]
    fn a_password_replaced_since_the_check_is_incorrect() {
        let user = verified_user(&site());
        let mut ports = Ports::new();
        ports.expect_verification("old", Some(STORED_HASH), MATCH);
        ports.expect_hashes(1);
        ports.uow.existing = Some(User {
            password_hash: Some("$argon2id$reset-meanwhile".into()),
            ..user.clone()
        });
        let uow = ports.uow.clone();
        assert!(matches!(
            run(ports.service().change_password(&user, &old(), &new())),
            Err(ChangePasswordError::IncorrectPassword)
        ));
        uow.assert_untouched();
    }

    #[test]
    fn changing_the_password_of_a_deleted_user_is_user_not_found() {
        let user = verified_user(&site());
        let mut ports = Ports::new();
        ports.expect_verification("old", Some(STORED_HASH), MATCH);
        ports.expect_hashes(1);
        let uow = ports.uow.clone();
        assert!(matches!(
            run(ports.service().change_password(&user, &old(), &new())),
            Err(ChangePasswordError::UserNotFound)
        ));
        uow.assert_untouched();
    }

    #[test]
    fn a_changed_password_ends_every_session_and_pending_flow() {
        let user = verified_user(&site());
        let mut ports = Ports::new();
        ports.expect_verification("old", Some(STORED_HASH), MATCH);
        ports.expect_hashes(1);
        ports.uow.existing = Some(user.clone());
        let uow = ports.uow.clone();
        let changed = run(ports.service().change_password(&user, &old(), &new())).unwrap();
        assert_eq!(changed.password_hash.as_deref(), Some(NEW_HASH));
        assert_eq!(changed.updated_at, NOW);
        assert_eq!(uow.writes(), replacement(&user));
        assert!(uow.committed());
    }

    #[test]
    fn a_change_fails_when_hashing_does() {
        let user = verified_user(&site());
        let mut ports = Ports::new();
        ports.expect_verification("old", Some(STORED_HASH), MATCH);
        ports
            .hasher
            .expect_hash()
            .returning(|_| Err(HashError::Busy));
        let uow = ports.uow.clone();
        assert!(matches!(
            run(ports.service().change_password(&user, &old(), &new())),
            Err(ChangePasswordError::Failure(Failure::Hash(HashError::Busy)))
        ));
        assert!(!uow.began());
    }

    #[test]
    fn a_reset_request_is_only_recorded() {
        let site = site();
        let mut ports = Ports::new();
        let site_id = site.id;
        ports
            .accounts
            .expect_record_reset_request()
            .withf(move |r| {
                r.site_id == site_id
                    && r.email.as_str() == "someone@example.com"
                    && r.created_at == NOW
            })
            .times(1)
            .returning(|_| Ok(()));
        let uow = ports.uow.clone();
        run(ports
            .service()
            .request_password_reset(&site, &email("Someone@Example.com")))
        .unwrap();
        // Whether the address has an account is not looked at here.
        assert_eq!(uow.calls(), []);
    }

    #[test]
    fn a_reset_request_fails_when_storage_does() {
        let mut ports = Ports::new();
        ports
            .accounts
            .expect_record_reset_request()
            .returning(|_| Err(RepoError::Unavailable("down".into())));
        assert!(matches!(
            run(ports
                .service()
                .request_password_reset(&site(), &email("a@example.com"))),
            Err(Failure::Repo(RepoError::Unavailable(_)))
        ));
    }

    fn reset_request(site: &Site, n: u128, address: &str) -> ResetRequest {
        ResetRequest {
            id: uuid::Uuid::from_u128(n),
            site_id: site.id,
            email: email(address),
            created_at: 1,
        }
    }

    /// Ports whose claim of up to 10 requests, for a minute from now, gets `requests`.
    fn claiming(requests: Vec<ResetRequest>) -> Ports {
        let mut ports = Ports::new();
        ports
            .accounts
            .expect_claim_reset_requests()
            .withf(|limit, now, until| (*limit, *now, *until) == (10, NOW, NOW + 60))
            .times(1)
            .returning(move |_, _, _| Ok(requests.clone()));
        ports
    }

    #[test]
    fn handling_reset_requests_mails_a_link_to_known_addresses_only() {
        let site = site();
        // Verified or not, a user gets the link.
        let user = user_of(&site, "me@example.com");
        let known = reset_request(&site, 1, "me@example.com");
        let unknown = reset_request(&site, 2, "nobody@example.com");
        let mut ports = claiming(vec![known.clone(), unknown.clone()]);
        ports.uow.site = Some(site.clone());
        ports.uow.existing = Some(user.clone());
        let ttl = ports.settings.password_reset_ttl;
        let uow = ports.uow.clone();
        assert_eq!(run(ports.service().process_reset_requests(10)).unwrap(), 2);
        let [mail] = uow.queued().try_into().unwrap();
        assert_eq!(
            (mail.message.kind, mail.message.to.as_str()),
            (EmailKind::PasswordReset, "me@example.com")
        );
        assert_eq!(mail.link_expires_at, Some(NOW + ttl));
        let calls = uow.calls();
        let Some(Call::InsertResetToken(token)) = calls.get(3).cloned() else {
            panic!("no reset token stored: {calls:?}");
        };
        assert_eq!(
            (token.site_id, token.user_id, token.expires_at),
            (site.id, user.id, NOW + ttl)
        );
        // One transaction per request, each holding the site before locking the user.
        assert_eq!(
            calls,
            [
                Call::Begin,
                Call::HoldSite(site.id),
                Call::LockUserByEmail(site.id, known.email),
                Call::InsertResetToken(token),
                Call::EnqueueEmail(mail),
                Call::DeleteResetRequest(known.id),
                Call::Commit,
                Call::Begin,
                Call::HoldSite(site.id),
                Call::LockUserByEmail(site.id, unknown.email),
                Call::DeleteResetRequest(unknown.id),
                Call::Commit,
            ]
        );
    }

    #[test]
    fn a_reset_request_for_a_deleted_site_is_dropped() {
        let site = site();
        let request = reset_request(&site, 1, "me@example.com");
        let mut ports = claiming(vec![request.clone()]);
        ports.uow.existing = Some(user_of(&site, "me@example.com"));
        let uow = ports.uow.clone();
        assert_eq!(run(ports.service().process_reset_requests(10)).unwrap(), 1);
        assert_eq!(
            uow.calls(),
            [
                Call::Begin,
                Call::HoldSite(site.id),
                Call::DeleteResetRequest(request.id),
                Call::Commit,
            ]
        );
    }

    #[test]
    fn no_reset_requests_begin_no_transaction() {
        let ports = claiming(Vec::new());
        let uow = ports.uow.clone();
        assert_eq!(run(ports.service().process_reset_requests(10)).unwrap(), 0);
        assert_eq!(uow.calls(), []);
    }

    #[test]
    fn handling_reset_requests_fails_when_storage_does() {
        let mut ports = Ports::new();
        ports
            .accounts
            .expect_claim_reset_requests()
            .returning(|_, _, _| Err(RepoError::Other("broken".into())));
        assert!(matches!(
            run(ports.service().process_reset_requests(10)),
            Err(RepoError::Other(_))
        ));
    }

    /// Ports where "reset" finds `token`, whose owner `user` is found and stored, and the claim
    /// of the token is won.
    fn reset_ports(user: &User, token: ResetToken) -> Ports {
        let mut ports = Ports::new();
        ports
            .accounts
            .expect_find_reset_token()
            .withf(|d| d == token::digest("reset"))
            .returning(move |_| Ok(Some(token.clone())));
        let found = user.clone();
        ports
            .accounts
            .expect_find_user()
            .returning(move |_| Ok(Some(found.clone())));
        ports.uow.existing = Some(user.clone());
        ports.uow.answers.reset_token_claimed = true;
        ports
    }

    fn reset_token(user: &User, expires_at: i64, used: bool) -> ResetToken {
        ResetToken {
            token: stored_token(user, "reset", expires_at),
            used,
        }
    }

    #[test]
    fn an_unknown_used_or_expired_reset_token_is_invalid() {
        let site = site();
        let user = verified_user(&site);
        let mut unknown = Ports::new();
        unknown
            .accounts
            .expect_find_reset_token()
            .returning(|_| Ok(None));
        for mut ports in [
            unknown,
            reset_ports(&user, reset_token(&user, NOW + 60, true)),
            reset_ports(&user, reset_token(&user, NOW - 1, false)),
        ] {
            ports.expect_hashes(0);
            let uow = ports.uow.clone();
            assert!(matches!(
                run(ports.service().reset_password(&site, "reset", &new())),
                Err(ResetPasswordError::InvalidToken)
            ));
            assert_eq!(uow.calls(), []);
        }
    }

    #[test]
    fn a_reset_token_of_another_site_is_invalid_and_burns_nothing() {
        let user = verified_user(&other_site());
        let mut ports = reset_ports(&user, reset_token(&user, NOW + 60, false));
        ports.expect_hashes(0);
        let uow = ports.uow.clone();
        assert!(matches!(
            run(ports.service().reset_password(&site(), "reset", &new())),
            Err(ResetPasswordError::InvalidToken)
        ));
        assert_eq!(uow.calls(), []);
    }

    #[test]
    fn a_reset_token_whose_user_is_gone_is_invalid() {
        let site = site();
        let user = verified_user(&site);
        let mut before = Ports::new();
        let token = reset_token(&user, NOW + 60, false);
        before
            .accounts
            .expect_find_reset_token()
            .returning(move |_| Ok(Some(token.clone())));
        before.accounts.expect_find_user().returning(|_| Ok(None));
        before.expect_hashes(0);
        let mut at_the_lock = reset_ports(&user, reset_token(&user, NOW + 60, false));
        at_the_lock.expect_hashes(1);
        at_the_lock.uow.existing = None;
        for ports in [before, at_the_lock] {
            let uow = ports.uow.clone();
            assert!(matches!(
                run(ports.service().reset_password(&site, "reset", &new())),
                Err(ResetPasswordError::InvalidToken)
            ));
            uow.assert_untouched();
        }
    }

    #[test]
    fn a_reset_token_claimed_concurrently_is_invalid() {
        let site = site();
        let user = verified_user(&site);
        let mut ports = reset_ports(&user, reset_token(&user, NOW + 60, false));
        ports.expect_hashes(1);
        ports.uow.answers.reset_token_claimed = false;
        let uow = ports.uow.clone();
        assert!(matches!(
            run(ports.service().reset_password(&site, "reset", &new())),
            Err(ResetPasswordError::InvalidToken)
        ));
        assert_eq!(
            uow.calls(),
            [
                Call::Begin,
                Call::LockUser(user.id),
                Call::ClaimResetToken(token::digest("reset")),
            ]
        );
    }

    #[test]
    fn a_reset_locks_the_user_before_its_token_and_ends_every_session() {
        let site = site();
        let user = verified_user(&site);
        // Live up to and including its expiry second.
        let mut ports = reset_ports(&user, reset_token(&user, NOW, false));
        ports.expect_hashes(1);
        let uow = ports.uow.clone();
        let reset = run(ports.service().reset_password(&site, "reset", &new())).unwrap();
        assert_eq!(reset.password_hash.as_deref(), Some(NEW_HASH));
        let mut expected = vec![
            Call::Begin,
            Call::LockUser(user.id),
            Call::ClaimResetToken(token::digest("reset")),
        ];
        expected.extend(replacement(&user));
        expected.push(Call::Commit);
        assert_eq!(uow.calls(), expected);
    }

    #[test]
    fn a_reset_fails_when_hashing_does_and_claims_nothing() {
        let site = site();
        let user = verified_user(&site);
        let mut ports = reset_ports(&user, reset_token(&user, NOW + 60, false));
        ports
            .hasher
            .expect_hash()
            .returning(|_| Err(HashError::Busy));
        let uow = ports.uow.clone();
        assert!(matches!(
            run(ports.service().reset_password(&site, "reset", &new())),
            Err(ResetPasswordError::Failure(Failure::Hash(HashError::Busy)))
        ));
        assert_eq!(uow.calls(), []);
    }
}
