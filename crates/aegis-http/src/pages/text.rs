//! Every word the hosted pages show, in one place, ready for translation: a translation is
//! another [`Text`] value. Field validation messages are not here: they are the API's own
//! (`aegis_domain::validation::msg`), word for word.

/// The wording of the hosted pages.
#[derive(Debug)]
pub struct Text {
    /// The `lang` attribute of every page.
    pub lang: &'static str,
    /// Shown where no site is known (a link that names none).
    pub no_site: &'static str,
    /// The heading of the error summary above a form.
    pub error_summary: &'static str,
    /// Prefix read before a field's error by screen readers.
    pub error_prefix: &'static str,

    /// Set-password form of an invitation.
    pub set_password_title: &'static str,
    /// Its introduction.
    pub set_password_intro: &'static str,
    /// The label of a new password field.
    pub new_password: &'static str,
    /// The hint under a new password field.
    pub new_password_hint: &'static str,
    /// The set-password button.
    pub set_password_button: &'static str,

    /// Reset-password form.
    pub reset_title: &'static str,
    /// Its introduction.
    pub reset_intro: &'static str,
    /// Its button.
    pub reset_button: &'static str,
    /// After a reset.
    pub reset_done_title: &'static str,
    /// Its text.
    pub reset_done_body: &'static str,

    /// The email-change confirmation page.
    pub email_change_title: &'static str,
    /// Its introduction.
    pub email_change_intro: &'static str,
    /// Its button.
    pub email_change_button: &'static str,
    /// After the change.
    pub email_change_done_title: &'static str,
    /// Its text.
    pub email_change_done_body: &'static str,
    /// When another account took the address meanwhile.
    pub email_in_use_title: &'static str,
    /// Its text.
    pub email_in_use_body: &'static str,

    /// The forgot-password form.
    pub forgot_title: &'static str,
    /// Its introduction.
    pub forgot_intro: &'static str,
    /// The label of the address field.
    pub email_label: &'static str,
    /// Its button.
    pub forgot_button: &'static str,
    /// After a request, whether or not the address has an account.
    pub forgot_done_title: &'static str,
    /// Its text.
    pub forgot_done_body: &'static str,

    /// The link back to the site.
    pub continue_to_site: &'static str,

    /// A link that never existed, or was used (kinds deleted once used).
    pub invalid_link_title: &'static str,
    /// Its text.
    pub invalid_link_body: &'static str,
    /// An expired link.
    pub expired_link_title: &'static str,
    /// Its text.
    pub expired_link_body: &'static str,
    /// A used link.
    pub used_link_title: &'static str,
    /// Its text.
    pub used_link_body: &'static str,
    /// A page with no site, or an unknown one.
    pub unknown_site_title: &'static str,
    /// Its text.
    pub unknown_site_body: &'static str,
    /// A form post refused by the cross-site request checks.
    pub csrf_title: &'static str,
    /// Its text.
    pub csrf_body: &'static str,
    /// Over a rate limit.
    pub rate_limited_title: &'static str,
    /// Its text.
    pub rate_limited_body: &'static str,
    /// The database is unreachable.
    pub unavailable_title: &'static str,
    /// Its text.
    pub unavailable_body: &'static str,
    /// Anything else.
    pub failed_title: &'static str,
    /// Its text.
    pub failed_body: &'static str,
}

/// English.
pub const EN: Text = Text {
    lang: "en",
    no_site: "Account",
    error_summary: "There is a problem",
    error_prefix: "Error:",

    set_password_title: "Choose a password",
    set_password_intro: "Choose a password to finish setting up your account.",
    new_password: "New password",
    new_password_hint: "At least 8 characters.",
    set_password_button: "Set password",

    reset_title: "Reset your password",
    reset_intro: "Choose a new password. You will be signed out everywhere else.",
    reset_button: "Reset password",
    reset_done_title: "Your password has been reset",
    reset_done_body: "You can now sign in with your new password.",

    email_change_title: "Confirm your new email address",
    email_change_intro: "Confirm that you want to use this address for your account.",
    email_change_button: "Confirm email address",
    email_change_done_title: "Your email address has been changed",
    email_change_done_body: "Sign in with your new address from now on.",
    email_in_use_title: "This address is already in use",
    email_in_use_body: "Another account uses this address now, so it cannot be moved to yours.",

    forgot_title: "Forgot your password?",
    forgot_intro: "Enter your email address and we will send you a link to reset your password.",
    email_label: "Email address",
    forgot_button: "Send reset link",
    forgot_done_title: "Check your email",
    forgot_done_body: "If the address has an account, a password reset link is on its way. \
                       It may take a few minutes to arrive.",

    continue_to_site: "Continue to the site",

    invalid_link_title: "This link is not valid",
    invalid_link_body: "The link is incomplete, or it has already been used. Links work once; \
                        ask for a new one if you still need it.",
    expired_link_title: "This link has expired",
    expired_link_body: "Links work for a limited time. Ask for a new one.",
    used_link_title: "This link has already been used",
    used_link_body: "Links work once. Ask for a new one if you still need it.",
    unknown_site_title: "Page not found",
    unknown_site_body: "The link does not name a site this service knows.",
    csrf_title: "The form could not be sent",
    csrf_body: "The form was sent from somewhere else, or the page was open too long. \
                Go back, reload the page and try again.",
    rate_limited_title: "Too many requests",
    rate_limited_body: "Please wait a while before trying again.",
    unavailable_title: "Service temporarily unavailable",
    unavailable_body: "Please try again in a moment.",
    failed_title: "Something went wrong",
    failed_body: "Please try again later.",
};
