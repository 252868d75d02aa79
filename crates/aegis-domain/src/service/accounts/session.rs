//! Sessions: login, bearer authentication, logout and refresh.

use super::{AccountService, Failure};
use crate::clock::UnixTime;
use crate::ids::{SiteId, UserId};
use crate::password::{HashError, HashKind, Verification};
use crate::repo::{NewSession, RepoError, SessionOpened};
use crate::site::Site;
use crate::token::{self, IssuedToken, RefreshToken};
use crate::user::{Email, PlainPassword, User};

/// Why [`AccountService::login`] refused.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown address, wrong password, no password or an unusable hash, told apart neither by
    /// the answer nor by its timing; also a login that raced a credential change.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The password matched but the address is not verified yet.
    #[error("email not verified")]
    EmailNotVerified,
    /// Storage or hashing failed.
    #[error(transparent)]
    Failure(#[from] Failure),
}

/// Why [`AccountService::refresh`] refused.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// The token is unknown, revoked or expired, or was removed before it could be locked.
    #[error("invalid or expired refresh token")]
    InvalidToken,
    /// The token's user no longer exists.
    #[error("user not found")]
    UserNotFound,
    /// The token's user is not verified.
    #[error("user account not verified")]
    NotVerified,
    /// The token was used before, outside the grace window: its family and every session of the
    /// user (carried here, for the security log) were revoked.
    #[error("refresh token reuse detected")]
    ReuseDetected(Box<User>),
    /// Storage failed.
    #[error(transparent)]
    Failure(#[from] Failure),
}

failure_from!(LoginError, RefreshError);

/// A token handed to the client, with its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionToken {
    /// The plaintext for the client and the digest that was stored.
    pub token: IssuedToken,
    /// When the token stops being accepted.
    pub expires_at: UnixTime,
}

/// What login and refresh return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The signed-in user.
    pub user_id: UserId,
    /// The user's site.
    pub site_id: SiteId,
    /// The new auth (bearer) token.
    pub auth: SessionToken,
    /// `None` on refresh when rotation is off or the request fell in the grace window.
    pub refresh: Option<SessionToken>,
}

impl AccountService {
    /// Login. Unknown address, wrong password, no password and an unusable hash are one
    /// outcome, and each costs one password verification. The password is checked before the
    /// verification flag. A bcrypt or outdated hash is replaced on success.
    ///
    /// The tokens are stored with the user row locked, and only if the hash that was verified is
    /// still the stored one: a login that raced a password change, a reset or a deletion mints
    /// nothing, and the rehash writes the hash alone, never a stale copy of the row.
    pub async fn login(
        &self,
        site: &Site,
        email: &Email,
        password: &PlainPassword,
    ) -> Result<Session, LoginError> {
        let user = self.accounts.find_user_by_email(site.id, email).await?;
        let verified_hash = user.as_ref().and_then(|u| u.password_hash.clone());
        let verification = self.hasher.verify(password, verified_hash.clone()).await?;
        let (Some(user), Verification::Match { needs_rehash }, Some(verified_hash)) =
            (user, verification, verified_hash)
        else {
            return Err(LoginError::InvalidCredentials);
        };
        if !user.is_verified {
            return Err(LoginError::EmailNotVerified);
        }
        let rehash = if needs_rehash {
            Some(self.hasher.hash(password).await?)
        } else {
            None
        };
        let now = self.clock.now();
        let family = self.generator.token();
        let (auth, refresh) = self.new_session_tokens(&user, Some(family), now);
        let stored_auth = Self::stored_auth_token(&user, &auth, now);
        let opened = self
            .uow
            .open_session(NewSession {
                user: user.id,
                checked_hash: &verified_hash,
                auth: &stored_auth,
                refresh: refresh.as_ref().map(|(_, record)| record),
                rehash: rehash.as_deref().map(|hash| (hash, now)),
            })
            .await?;
        match opened {
            SessionOpened::Opened => {}
            SessionOpened::Stale => return Err(LoginError::InvalidCredentials),
            SessionOpened::Unverified => return Err(LoginError::EmailNotVerified),
        }
        Ok(Session {
            user_id: user.id,
            site_id: user.site_id,
            auth,
            refresh: refresh.map(|(token, _)| token),
        })
    }

    /// Times a verification of every kind of stored password hash (decision 20), so that a failed
    /// login costs the same whichever kind the account has, from the first one. Run at startup.
    pub async fn learn_password_costs(&self) -> Result<usize, Failure> {
        let kinds: Vec<HashKind> = self
            .accounts
            .password_hash_kinds()
            .await?
            .iter()
            .map(|k| HashKind::of(Some(k)))
            .filter(|k| *k != HashKind::Dummy)
            .collect();
        let count = kinds.len();
        self.hasher.learn_costs(kinds).await?;
        Ok(count)
    }

    /// The bearer check: the user a live auth token belongs to. One indexed query, unless the
    /// repository answers from a cache of its own (the PostgreSQL adapter's, decision 88).
    pub async fn authenticate(&self, presented: &str) -> Result<Option<User>, RepoError> {
        self.accounts
            .user_by_auth_token(&token::digest(presented), self.clock.now())
            .await
    }

    /// Logout: deletes the presented auth token and, when a refresh token of the same user is
    /// given, revokes its family. Returns whether the auth token was still there.
    pub async fn logout(
        &self,
        user: &User,
        presented_auth: &str,
        refresh: Option<&str>,
    ) -> Result<bool, RepoError> {
        let refresh_family = match refresh {
            Some(r) => self
                .accounts
                .find_refresh_token(&token::digest(r))
                .await?
                .filter(|t| t.user_id == user.id)
                .map(|t| t.family_id),
            None => None,
        };
        let mut tx = self.uow.begin().await?;
        let deleted = tx
            .accounts()
            .delete_auth_token(&token::digest(presented_auth))
            .await?;
        if let Some(family) = refresh_family {
            tx.accounts()
                .revoke_refresh_family(&family, Some(user.id))
                .await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }

    /// Refresh: rotation with an atomic claim, a grace window that mints no second
    /// successor, and reuse detection that revokes the family and all of the user's auth tokens.
    ///
    /// The token is read again with the user row locked, so a refresh that races a password
    /// change, a reset, a logout or a deletion either finishes before it (and its tokens are then
    /// revoked with the rest) or finds its token gone and mints nothing.
    pub async fn refresh(&self, presented: &str) -> Result<Session, RefreshError> {
        let digest = token::digest(presented);
        let now = self.clock.now();
        let live = |t: &RefreshToken| !t.revoked && token::is_live(t.expires_at, now);
        let owner = self
            .accounts
            .find_refresh_token(&digest)
            .await?
            .filter(live)
            .ok_or(RefreshError::InvalidToken)?
            .user_id;
        let mut tx = self.uow.begin().await?;
        let user = tx
            .accounts()
            .lock_user(owner)
            .await?
            .ok_or(RefreshError::UserNotFound)?;
        let stored = tx
            .accounts()
            .lock_refresh_token(&digest)
            .await?
            .filter(|t| live(t) && t.user_id == owner)
            .ok_or(RefreshError::InvalidToken)?;
        if !user.is_verified {
            return Err(RefreshError::NotVerified);
        }
        let rotate = self.settings.refresh_rotation;
        let (auth, successor) =
            self.new_session_tokens(&user, rotate.then(|| stored.family_id.clone()), now);
        if rotate {
            let won =
                stored.used_at.is_none() && tx.accounts().claim_refresh_token(&digest, now).await?;
            if !won {
                // Already used, by an earlier request or by a concurrent one just before.
                let used_at = stored.used_at.unwrap_or(now);
                if now > used_at + self.settings.refresh_grace {
                    tx.accounts()
                        .revoke_refresh_family(&stored.family_id, None)
                        .await?;
                    tx.accounts().delete_auth_tokens_of_user(user.id).await?;
                    tx.commit().await?;
                    return Err(RefreshError::ReuseDetected(Box::new(user)));
                }
                self.store_auth_token(&mut tx, &user, &auth, now).await?;
                tx.commit().await?;
                return Ok(Session {
                    user_id: user.id,
                    site_id: user.site_id,
                    auth,
                    refresh: None,
                });
            }
        }
        self.store_auth_token(&mut tx, &user, &auth, now).await?;
        if let Some((_, record)) = &successor {
            tx.accounts().insert_refresh_token(record).await?;
        }
        tx.commit().await?;
        Ok(Session {
            user_id: user.id,
            site_id: user.site_id,
            auth,
            refresh: successor.map(|(token, _)| token),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::fakes::{
        Call, NEW_HASH, NOW, Ports, STORED_HASH, run, site, user_of, verified_user,
    };
    use super::*;
    use crate::token::StoredToken;

    const MATCH: Verification = Verification::Match {
        needs_rehash: false,
    };

    fn pw() -> PlainPassword {
        PlainPassword::new("pw".into())
    }

    /// Ports where the address of a login on `site` finds `found`, once, and the transaction
    /// locks `found` as it is.
    fn login_ports(site: &Site, found: Option<User>) -> Ports {
        let mut ports = Ports::new();
        let site_id = site.id;
        ports.uow.existing.clone_from(&found);
        ports
            .accounts
            .expect_find_user_by_email()
            .withf(move |s, e| *s == site_id && e.as_str() == "me@example.com")
            .times(1)
            .returning(move |_, _| Ok(found.clone()));
        ports
    }

    fn login(ports: Ports, site: &Site) -> Result<Session, LoginError> {
        let address = Email::parse("me@example.com").unwrap();
        run(ports.service().login(site, &address, &pw()))
    }

    #[test]
    fn an_unknown_address_costs_one_verification_and_is_invalid() {
        let site = site();
        let mut ports = login_ports(&site, None);
        ports.expect_verification("pw", None, Verification::NoMatch);
        ports.expect_hashes(0);
        let uow = ports.uow.clone();
        assert!(matches!(
            login(ports, &site),
            Err(LoginError::InvalidCredentials)
        ));
        assert_eq!(uow.calls(), []);
    }

    #[test]
    fn a_wrong_password_costs_one_verification_and_is_invalid() {
        let site = site();
        let mut ports = login_ports(&site, Some(verified_user(&site)));
        ports.expect_verification("pw", Some(STORED_HASH), Verification::NoMatch);
        ports.expect_hashes(0);
        let uow = ports.uow.clone();
        assert!(matches!(
            login(ports, &site),
            Err(LoginError::InvalidCredentials)
        ));
        assert_eq!(uow.calls(), []);
    }

    #[test]
    fn an_account_without_a_password_costs_one_verification_and_is_invalid() {
        let site = site();
        let user = User {
            password_hash: None,
            ..verified_user(&site)
        };
        // Even a hasher that called it a match would not let a login without a hash through.
        for outcome in [Verification::NoMatch, MATCH] {
            let mut ports = login_ports(&site, Some(user.clone()));
            ports.expect_verification("pw", None, outcome);
            ports.expect_hashes(0);
            let uow = ports.uow.clone();
            assert!(matches!(
                login(ports, &site),
                Err(LoginError::InvalidCredentials)
            ));
            assert_eq!(uow.calls(), []);
        }
    }

    #[test]
    fn an_unverified_account_is_told_so_only_after_the_password_matched() {
        let site = site();
        let mut ports = login_ports(&site, Some(user_of(&site, "me@example.com")));
        ports.expect_verification("pw", Some(STORED_HASH), MATCH);
        let uow = ports.uow.clone();
        assert!(matches!(
            login(ports, &site),
            Err(LoginError::EmailNotVerified)
        ));
        assert_eq!(uow.calls(), []);
    }

    #[test]
    fn a_login_whose_user_changed_or_went_before_the_lock_mints_nothing() {
        let site = site();
        let user = verified_user(&site);
        let changed = User {
            password_hash: Some("$argon2id$changed".into()),
            ..user.clone()
        };
        for locked in [Some(changed), None] {
            let mut ports = login_ports(&site, Some(user.clone()));
            ports.uow.existing = locked;
            ports.expect_verification("pw", Some(STORED_HASH), MATCH);
            let uow = ports.uow.clone();
            assert!(matches!(
                login(ports, &site),
                Err(LoginError::InvalidCredentials)
            ));
            uow.assert_untouched();
        }
    }

    #[test]
    fn a_login_of_a_user_unverified_before_the_lock_mints_nothing() {
        let site = site();
        let user = verified_user(&site);
        let mut ports = login_ports(&site, Some(user.clone()));
        ports.uow.existing = Some(User {
            is_verified: false,
            ..user
        });
        ports.expect_verification("pw", Some(STORED_HASH), MATCH);
        let uow = ports.uow.clone();
        assert!(matches!(
            login(ports, &site),
            Err(LoginError::EmailNotVerified)
        ));
        uow.assert_untouched();
    }

    #[test]
    fn a_login_stores_an_auth_token_and_opens_a_refresh_family() {
        let site = site();
        let user = verified_user(&site);
        let mut ports = login_ports(&site, Some(user.clone()));
        ports.expect_verification("pw", Some(STORED_HASH), MATCH);
        ports.expect_hashes(0);
        let (auth_ttl, refresh_ttl) = (
            ports.settings.auth_token_ttl,
            ports.settings.refresh_token_ttl,
        );
        let uow = ports.uow.clone();
        let session = login(ports, &site).unwrap();
        assert_eq!((session.user_id, session.site_id), (user.id, site.id));
        assert_eq!(session.auth.expires_at, NOW + auth_ttl);
        assert_eq!(
            session.auth.token.digest,
            token::digest(&session.auth.token.plaintext)
        );
        let refresh = session.refresh.clone().unwrap();
        assert_eq!(refresh.expires_at, NOW + refresh_ttl);
        let calls: [Call; 5] = uow.calls().try_into().unwrap();
        let [
            Call::Begin,
            Call::LockUser(locked),
            Call::InsertAuthToken(auth),
            Call::InsertRefreshToken(record),
            Call::Commit,
        ] = calls
        else {
            panic!("unexpected calls: {calls:?}");
        };
        assert_eq!(locked, user.id);
        assert_eq!(
            auth,
            StoredToken {
                digest: session.auth.token.digest.clone(),
                site_id: site.id,
                user_id: user.id,
                expires_at: NOW + auth_ttl,
                created_at: NOW,
            }
        );
        assert!(!record.family_id.is_empty());
        assert_eq!(
            record,
            RefreshToken {
                digest: refresh.token.digest.clone(),
                site_id: site.id,
                user_id: user.id,
                family_id: record.family_id.clone(),
                expires_at: NOW + refresh_ttl,
                created_at: NOW,
                used_at: None,
                revoked: false,
            }
        );
    }

    #[test]
    fn a_login_with_an_outdated_hash_replaces_the_hash_it_verified() {
        let site = site();
        let user = verified_user(&site);
        let mut ports = login_ports(&site, Some(user.clone()));
        ports.expect_verification(
            "pw",
            Some(STORED_HASH),
            Verification::Match { needs_rehash: true },
        );
        ports.expect_hashes(1);
        let uow = ports.uow.clone();
        login(ports, &site).unwrap();
        let rehashes: Vec<Call> = uow
            .writes()
            .into_iter()
            .filter(|c| matches!(c, Call::ReplacePasswordHash { .. } | Call::UpdateUser(_)))
            .collect();
        assert_eq!(
            rehashes,
            [Call::ReplacePasswordHash {
                user: user.id,
                expected: STORED_HASH.into(),
                new: NEW_HASH.into(),
            }]
        );
        assert!(uow.committed());
    }

    #[test]
    fn a_login_fails_when_storage_or_hashing_does() {
        let site = site();
        let mut down = Ports::new();
        down.accounts
            .expect_find_user_by_email()
            .returning(|_, _| Err(RepoError::Unavailable("down".into())));
        assert!(matches!(
            login(down, &site),
            Err(LoginError::Failure(Failure::Repo(RepoError::Unavailable(
                _
            ))))
        ));
        let mut busy = login_ports(&site, Some(verified_user(&site)));
        busy.hasher
            .expect_verify()
            .returning(|_, _| Err(HashError::Busy));
        assert!(matches!(
            login(busy, &site),
            Err(LoginError::Failure(Failure::Hash(HashError::Busy)))
        ));
    }

    #[test]
    fn learning_costs_times_every_stored_kind_but_the_unusable_ones() {
        let mut ports = Ports::new();
        ports.accounts.expect_password_hash_kinds().returning(|| {
            Ok(vec![
                "$2b$12$".into(),
                "$argon2id$v=19$m=19456,t=2,p=1$".into(),
                "plain".into(),
            ])
        });
        ports
            .hasher
            .expect_learn_costs()
            .withf(|kinds| {
                *kinds
                    == [
                        HashKind::Bcrypt(12),
                        HashKind::Argon2("$argon2id$v=19$m=19456,t=2,p=1$".into()),
                    ]
            })
            .times(1)
            .returning(|_| Ok(()));
        assert_eq!(run(ports.service().learn_password_costs()).unwrap(), 2);
    }

    #[test]
    fn learning_costs_fails_when_storage_does() {
        let mut ports = Ports::new();
        ports
            .accounts
            .expect_password_hash_kinds()
            .returning(|| Err(RepoError::Other("broken".into())));
        assert!(matches!(
            run(ports.service().learn_password_costs()),
            Err(Failure::Repo(RepoError::Other(_)))
        ));
    }

    #[test]
    fn authentication_looks_up_the_digest_at_the_current_time() {
        let user = verified_user(&site());
        let mut ports = Ports::new();
        let found = user.clone();
        ports
            .accounts
            .expect_user_by_auth_token()
            .withf(|digest, now| digest == token::digest("bearer") && *now == NOW)
            .times(1)
            .returning(move |_, _| Ok(Some(found.clone())));
        assert_eq!(
            run(ports.service().authenticate("bearer")).unwrap(),
            Some(user)
        );
    }

    /// A refresh token of `user` in family "family", presented as "refresh".
    fn refresh_token(user: &User, used_at: Option<i64>) -> RefreshToken {
        RefreshToken {
            digest: token::digest("refresh"),
            site_id: user.site_id,
            user_id: user.id,
            family_id: "family".into(),
            expires_at: NOW + 60,
            created_at: 1,
            used_at,
            revoked: false,
        }
    }

    #[test]
    fn logout_deletes_the_auth_token_and_revokes_the_users_refresh_family() {
        let user = verified_user(&site());
        let mut ports = Ports::new();
        let found = refresh_token(&user, None);
        ports
            .accounts
            .expect_find_refresh_token()
            .withf(|d| d == token::digest("refresh"))
            .returning(move |_| Ok(Some(found.clone())));
        ports.uow.answers.auth_token_deleted = true;
        let uow = ports.uow.clone();
        assert!(run(ports.service().logout(&user, "bearer", Some("refresh"))).unwrap());
        assert_eq!(
            uow.writes(),
            [
                Call::DeleteAuthToken(token::digest("bearer")),
                Call::RevokeRefreshFamily("family".into(), Some(user.id)),
            ]
        );
        assert!(uow.committed());
    }

    #[test]
    fn logout_leaves_another_users_refresh_family_alone() {
        let user = verified_user(&site());
        let other = User {
            id: UserId::from_uuid(uuid::Uuid::from_u128(8)),
            ..user.clone()
        };
        let mut ports = Ports::new();
        let found = refresh_token(&other, None);
        ports
            .accounts
            .expect_find_refresh_token()
            .returning(move |_| Ok(Some(found.clone())));
        let uow = ports.uow.clone();
        // The auth token was already gone.
        assert!(!run(ports.service().logout(&user, "bearer", Some("refresh"))).unwrap());
        assert_eq!(
            uow.writes(),
            [Call::DeleteAuthToken(token::digest("bearer"))]
        );
    }

    #[test]
    fn logout_without_a_refresh_token_only_deletes_the_auth_token() {
        let user = verified_user(&site());
        let mut ports = Ports::new();
        ports.uow.answers.auth_token_deleted = true;
        let uow = ports.uow.clone();
        assert!(run(ports.service().logout(&user, "bearer", None)).unwrap());
        assert_eq!(
            uow.writes(),
            [Call::DeleteAuthToken(token::digest("bearer"))]
        );
    }

    /// Ports where "refresh" finds `token` before and under the lock, its user is `user` and the
    /// claim is won.
    fn refresh_ports(user: Option<User>, token: RefreshToken) -> Ports {
        let mut ports = Ports::new();
        let found = token.clone();
        ports
            .accounts
            .expect_find_refresh_token()
            .withf(|d| d == token::digest("refresh"))
            .returning(move |_| Ok(Some(found.clone())));
        ports.uow.existing = user;
        ports.uow.refresh_token = Some(token);
        ports.uow.answers.refresh_token_claimed = true;
        ports
    }

    #[test]
    fn an_unknown_revoked_or_expired_refresh_token_is_invalid() {
        let user = verified_user(&site());
        let revoked = RefreshToken {
            revoked: true,
            ..refresh_token(&user, None)
        };
        let expired = RefreshToken {
            expires_at: NOW - 1,
            ..refresh_token(&user, None)
        };
        let mut unknown = Ports::new();
        unknown
            .accounts
            .expect_find_refresh_token()
            .returning(|_| Ok(None));
        for ports in [
            unknown,
            refresh_ports(Some(user.clone()), revoked),
            refresh_ports(Some(user.clone()), expired),
        ] {
            let uow = ports.uow.clone();
            assert!(matches!(
                run(ports.service().refresh("refresh")),
                Err(RefreshError::InvalidToken)
            ));
            assert_eq!(uow.calls(), []);
        }
    }

    #[test]
    fn a_refresh_token_whose_user_is_gone_is_user_not_found() {
        let user = verified_user(&site());
        let ports = refresh_ports(None, refresh_token(&user, None));
        let uow = ports.uow.clone();
        assert!(matches!(
            run(ports.service().refresh("refresh")),
            Err(RefreshError::UserNotFound)
        ));
        uow.assert_untouched();
    }

    #[test]
    fn a_refresh_token_gone_or_moved_by_the_lock_is_invalid() {
        let user = verified_user(&site());
        let other_owner = RefreshToken {
            user_id: UserId::from_uuid(uuid::Uuid::from_u128(8)),
            ..refresh_token(&user, None)
        };
        let revoked = RefreshToken {
            revoked: true,
            ..refresh_token(&user, None)
        };
        for locked in [None, Some(other_owner), Some(revoked)] {
            let mut ports = refresh_ports(Some(user.clone()), refresh_token(&user, None));
            ports.uow.refresh_token = locked;
            let uow = ports.uow.clone();
            assert!(matches!(
                run(ports.service().refresh("refresh")),
                Err(RefreshError::InvalidToken)
            ));
            // The user is locked before the token, as every credential change does.
            assert_eq!(
                uow.calls(),
                [
                    Call::Begin,
                    Call::LockUser(user.id),
                    Call::LockRefreshToken(token::digest("refresh")),
                ]
            );
        }
    }

    #[test]
    fn a_refresh_for_an_unverified_user_is_not_verified() {
        let user = user_of(&site(), "me@example.com");
        let ports = refresh_ports(Some(user.clone()), refresh_token(&user, None));
        let uow = ports.uow.clone();
        assert!(matches!(
            run(ports.service().refresh("refresh")),
            Err(RefreshError::NotVerified)
        ));
        uow.assert_untouched();
    }

    #[test]
    fn a_refresh_claims_its_token_and_hands_out_a_successor_in_the_family() {
        let site = site();
        let user = verified_user(&site);
        let ports = refresh_ports(Some(user.clone()), refresh_token(&user, None));
        let (auth_ttl, refresh_ttl) = (
            ports.settings.auth_token_ttl,
            ports.settings.refresh_token_ttl,
        );
        let uow = ports.uow.clone();
        let session = run(ports.service().refresh("refresh")).unwrap();
        assert_eq!((session.user_id, session.site_id), (user.id, site.id));
        assert_eq!(session.auth.expires_at, NOW + auth_ttl);
        let successor = session.refresh.clone().unwrap();
        assert_eq!(successor.expires_at, NOW + refresh_ttl);
        assert_eq!(
            uow.writes(),
            [
                Call::ClaimRefreshToken(token::digest("refresh"), NOW),
                Call::InsertAuthToken(StoredToken {
                    digest: session.auth.token.digest.clone(),
                    site_id: site.id,
                    user_id: user.id,
                    expires_at: NOW + auth_ttl,
                    created_at: NOW,
                }),
                Call::InsertRefreshToken(RefreshToken {
                    digest: successor.token.digest.clone(),
                    site_id: site.id,
                    user_id: user.id,
                    family_id: "family".into(),
                    expires_at: NOW + refresh_ttl,
                    created_at: NOW,
                    used_at: None,
                    revoked: false,
                }),
            ]
        );
        assert!(uow.committed());
    }

    #[test]
    fn a_reuse_after_the_grace_window_revokes_the_family_and_every_session() {
        let user = verified_user(&site());
        let grace = super::super::AccountSettings::default().refresh_grace;
        let ports = refresh_ports(
            Some(user.clone()),
            refresh_token(&user, Some(NOW - grace - 1)),
        );
        let uow = ports.uow.clone();
        let Err(RefreshError::ReuseDetected(reused_by)) = run(ports.service().refresh("refresh"))
        else {
            panic!("reuse not detected");
        };
        assert_eq!(*reused_by, user);
        assert_eq!(
            uow.writes(),
            [
                Call::RevokeRefreshFamily("family".into(), None),
                Call::DeleteAuthTokensOfUser(user.id),
            ]
        );
        // The revocation stands although the refresh fails.
        assert!(uow.committed());
    }

    #[test]
    fn a_reuse_within_the_grace_window_gets_an_auth_token_only() {
        let user = verified_user(&site());
        let grace = super::super::AccountSettings::default().refresh_grace;
        let ports = refresh_ports(Some(user.clone()), refresh_token(&user, Some(NOW - grace)));
        let uow = ports.uow.clone();
        let session = run(ports.service().refresh("refresh")).unwrap();
        assert_eq!(session.refresh, None);
        let writes: [Call; 1] = uow.writes().try_into().unwrap();
        let [Call::InsertAuthToken(auth)] = writes else {
            panic!("unexpected writes: {writes:?}");
        };
        assert_eq!(auth.digest, session.auth.token.digest);
        assert!(uow.committed());
    }

    #[test]
    fn a_refresh_that_loses_the_claim_counts_as_a_reuse_within_the_grace_window() {
        let user = verified_user(&site());
        let mut ports = refresh_ports(Some(user.clone()), refresh_token(&user, None));
        ports.uow.answers.refresh_token_claimed = false;
        let uow = ports.uow.clone();
        let session = run(ports.service().refresh("refresh")).unwrap();
        assert_eq!(session.refresh, None);
        let writes = uow.writes();
        assert_eq!(
            writes[0],
            Call::ClaimRefreshToken(token::digest("refresh"), NOW)
        );
        assert!(matches!(writes[1..], [Call::InsertAuthToken(_)]));
    }

    #[test]
    fn without_rotation_a_refresh_hands_out_an_auth_token_only() {
        let user = verified_user(&site());
        // Used long ago: without rotation that is no reuse.
        let mut ports = refresh_ports(Some(user.clone()), refresh_token(&user, Some(1)));
        ports.settings.refresh_rotation = false;
        let uow = ports.uow.clone();
        let session = run(ports.service().refresh("refresh")).unwrap();
        assert_eq!(session.refresh, None);
        assert!(matches!(
            uow.writes().as_slice(),
            [Call::InsertAuthToken(_)]
        ));
        assert!(uow.committed());
    }

    #[test]
    fn a_refresh_fails_when_storage_does() {
        let mut ports = Ports::new();
        ports
            .accounts
            .expect_find_refresh_token()
            .returning(|_| Err(RepoError::Unavailable("down".into())));
        assert!(matches!(
            run(ports.service().refresh("refresh")),
            Err(RefreshError::Failure(Failure::Repo(
                RepoError::Unavailable(_)
            )))
        ));
    }
}
