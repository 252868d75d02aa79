//! The one map from domain outcomes to HTTP answers: each use case's error becomes its status and
//! message here, and nowhere else. Storage and hashing failures keep their cause, so an outage is
//! still found in the source chain and answered 503 (decision 27).

use actix_web::http::StatusCode;
use aegis_domain::password::HashError;
use aegis_domain::service::accounts::{
    ChangePasswordError, EmailChangeError, Failure, InviteError, LoginError, RefreshError,
    RegisterError, ResetPasswordError, VerifyEmailError,
};
use aegis_domain::service::users::{
    DeleteUserError, OperatorVerifyError, ResendError, SetRoleError,
};
use aegis_domain::{CreateSiteError, DeleteSiteError, RepoError, UpdateSiteError};

use crate::error::ApiError;

/// `Site not found`, the 404 of every site route.
pub const SITE_NOT_FOUND: &str = "Site not found";
/// `User not found`, the 404 of every user route.
pub const USER_NOT_FOUND: &str = "User not found";

const INTERNAL: &str = "Internal server error";

impl From<RepoError> for ApiError {
    fn from(e: RepoError) -> Self {
        Self::internal(INTERNAL, e)
    }
}

impl From<HashError> for ApiError {
    fn from(e: HashError) -> Self {
        Self::internal(INTERNAL, e)
    }
}

impl From<Failure> for ApiError {
    fn from(e: Failure) -> Self {
        Self::internal(INTERNAL, e)
    }
}

impl From<RegisterError> for ApiError {
    fn from(e: RegisterError) -> Self {
        match e {
            RegisterError::SelfRegistrationDisabled => {
                Self::bad_request("Self-registration is not enabled for this site")
            }
            RegisterError::Failure(e) => e.into(),
        }
    }
}

impl From<InviteError> for ApiError {
    fn from(e: InviteError) -> Self {
        match e {
            InviteError::AlreadyRegistered => {
                Self::bad_request("Email already registered for this site")
            }
            InviteError::Failure(e) => e.into(),
        }
    }
}

impl From<VerifyEmailError> for ApiError {
    fn from(e: VerifyEmailError) -> Self {
        match e {
            VerifyEmailError::InvalidToken => {
                Self::bad_request("Invalid or expired verification token")
            }
            VerifyEmailError::PasswordRequired => {
                Self::bad_request("Password is required to complete account setup")
            }
            VerifyEmailError::Failure(e) => e.into(),
        }
    }
}

impl From<LoginError> for ApiError {
    fn from(e: LoginError) -> Self {
        match e {
            LoginError::InvalidCredentials => Self::unauthorized("Invalid credentials"),
            LoginError::EmailNotVerified => {
                Self::Client(StatusCode::FORBIDDEN, "Email not verified")
            }
            LoginError::Failure(e) => e.into(),
        }
    }
}

impl From<RefreshError> for ApiError {
    fn from(e: RefreshError) -> Self {
        match e {
            RefreshError::InvalidToken => Self::unauthorized("Invalid or expired refresh token"),
            RefreshError::UserNotFound => Self::unauthorized("User not found"),
            RefreshError::NotVerified => Self::unauthorized("User account not verified"),
            RefreshError::ReuseDetected(_) => Self::Client(
                StatusCode::FORBIDDEN,
                "Refresh token reuse detected - all sessions revoked",
            ),
            RefreshError::Failure(e) => e.into(),
        }
    }
}

impl From<ChangePasswordError> for ApiError {
    fn from(e: ChangePasswordError) -> Self {
        match e {
            ChangePasswordError::IncorrectPassword => Self::bad_request("Incorrect password"),
            ChangePasswordError::UserNotFound => Self::bad_request("User not found"),
            ChangePasswordError::Failure(e) => e.into(),
        }
    }
}

impl From<ResetPasswordError> for ApiError {
    fn from(e: ResetPasswordError) -> Self {
        match e {
            ResetPasswordError::InvalidToken => Self::bad_request("Invalid or expired reset token"),
            ResetPasswordError::Failure(e) => e.into(),
        }
    }
}

impl From<EmailChangeError> for ApiError {
    fn from(e: EmailChangeError) -> Self {
        match e {
            EmailChangeError::InvalidPassword => Self::bad_request("Invalid password"),
            EmailChangeError::InvalidToken => {
                Self::bad_request("Invalid or expired email change token")
            }
            EmailChangeError::EmailInUse => Self::bad_request("Email already in use"),
            EmailChangeError::Failure(e) => e.into(),
        }
    }
}

impl From<CreateSiteError> for ApiError {
    fn from(e: CreateSiteError) -> Self {
        match e {
            CreateSiteError::DomainTaken => Self::bad_request("Domain already exists"),
            CreateSiteError::Repo(e) => Self::internal("Failed to create site", e),
        }
    }
}

impl From<UpdateSiteError> for ApiError {
    fn from(e: UpdateSiteError) -> Self {
        match e {
            UpdateSiteError::NothingToUpdate => {
                Self::bad_request("At least one field must be provided")
            }
            UpdateSiteError::NotFound => Self::not_found(SITE_NOT_FOUND),
            UpdateSiteError::DomainTaken => Self::bad_request("Domain already exists"),
            UpdateSiteError::Repo(e) => Self::internal("Failed to update site", e),
        }
    }
}

impl From<DeleteSiteError> for ApiError {
    fn from(e: DeleteSiteError) -> Self {
        match e {
            DeleteSiteError::NotFound => Self::not_found(SITE_NOT_FOUND),
            DeleteSiteError::Protected => Self::Conflict {
                message: "This site is protected from deletion".into(),
                code: "site_deletion_protected",
            },
            DeleteSiteError::HasProtectedUsers(n) => Self::Conflict {
                message: format!(
                    "Site has {n} deletion-protected user(s); clear their protection before \
                     deleting the site"
                ),
                code: "site_has_protected_users",
            },
            DeleteSiteError::ProtectionRace => Self::bug(
                "Failed to delete site",
                "a deletion protection appeared concurrently",
            ),
            DeleteSiteError::Repo(e) => Self::internal("Failed to delete site", e),
        }
    }
}

impl From<DeleteUserError> for ApiError {
    fn from(e: DeleteUserError) -> Self {
        match e {
            DeleteUserError::NotFound => Self::not_found(USER_NOT_FOUND),
            DeleteUserError::SiteMissing => Self::Client(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Site for this user could not be resolved",
            ),
            DeleteUserError::SiteProtected => Self::Conflict {
                message: "This site is protected from deletion; none of its users can be deleted"
                    .into(),
                code: "site_deletion_protected",
            },
            DeleteUserError::UserProtected => Self::Conflict {
                message: "User is protected from deletion".into(),
                code: "user_deletion_protected",
            },
            DeleteUserError::LastAdmin => Self::Conflict {
                message: "Cannot delete the last admin of a site".into(),
                code: "last_site_admin",
            },
            DeleteUserError::Race => Self::bug(
                "Failed to delete user",
                "a deletion guard refused concurrently",
            ),
            DeleteUserError::Repo(e) => Self::internal("Failed to delete user", e),
        }
    }
}

impl From<ResendError> for ApiError {
    fn from(e: ResendError) -> Self {
        match e {
            ResendError::NotFound => Self::not_found(USER_NOT_FOUND),
            ResendError::AlreadyVerified => Self::bad_request("User is already verified"),
            ResendError::Repo(e) => e.into(),
        }
    }
}

/// An operator's verification (the CLI's `users verify`): the texts of resend-verification.
impl From<OperatorVerifyError> for ApiError {
    fn from(e: OperatorVerifyError) -> Self {
        match e {
            OperatorVerifyError::NotFound => Self::not_found(USER_NOT_FOUND),
            OperatorVerifyError::AlreadyVerified => Self::bad_request("User is already verified"),
            OperatorVerifyError::Repo(e) => Self::internal("Failed to verify user", e),
        }
    }
}

/// A role change (the CLI's `users set-role`): a site keeps its last admin, as on deletion.
impl From<SetRoleError> for ApiError {
    fn from(e: SetRoleError) -> Self {
        match e {
            SetRoleError::NotFound => Self::not_found(USER_NOT_FOUND),
            SetRoleError::LastAdmin => Self::Conflict {
                message: "Cannot demote the last admin of a site".into(),
                code: "last_site_admin",
            },
            SetRoleError::Repo(e) => Self::internal("Failed to update user", e),
        }
    }
}
