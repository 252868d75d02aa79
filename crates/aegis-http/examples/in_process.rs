//! Aegis's services called in-process against PostgreSQL: a site, a registration, the emailed
//! verification link, a login, and the bearer check, with no HTTP in between.
//!
//! `DATABASE_URL=postgres://… SECRET_KEY=… cargo run -p aegis-http --example in_process`
//! (mail is written as `.eml` files to `AEGIS_OUTBOX_DIR`, by default a temporary directory).

use std::time::Duration;

use aegis_domain::NewSite;
use aegis_domain::user::{Email, PlainPassword};
use aegis_http::config::Settings;
use aegis_http::embed::Aegis;

/// Runs the whole flow; returns the signed-in user's address.
pub async fn run(
    database_url: &str,
    secret: &str,
    outbox: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let settings = Settings::from_vars([
        ("DATABASE_URL", database_url),
        ("SECRET_KEY", secret),
        ("AEGIS_ENV", "development"),
        ("MAIL_TRANSPORT", "outbox"),
        ("AEGIS_OUTBOX_DIR", outbox),
    ])?;
    let aegis = Aegis::start(&settings).await?;
    let workers = aegis.spawn_workers()?; // delivers the email below

    let site = aegis
        .sites()
        .create(NewSite {
            name: "Example".into(),
            domain: "in-process.example.com".into(),
            frontend_url: "https://app.example.com".into(),
            verification_redirect_url: None,
            email_from: Email::parse("noreply@example.com")?,
            email_from_name: "Example".into(),
            allow_self_registration: true,
            webhook_url: None,
            mailgun_domain: None,
            mailgun_api_key: None,
        })
        .await?;
    let email = Email::parse("Ada@Example.com")?;
    let password = PlainPassword::new("correct horse battery".into());
    aegis
        .accounts()
        .register(&site, &email, Some(&password))
        .await?;

    // The user clicks the link in the verification email.
    let token = emailed_token(outbox).await?;
    aegis.accounts().verify_email(&site, &token, None).await?;

    let session = aegis.accounts().login(&site, &email, &password).await?;
    let user = aegis
        .accounts()
        .authenticate(&session.auth.token.plaintext)
        .await?
        .ok_or("token refused")?;
    workers.stop().await;
    Ok(user.email.to_string())
}

/// The token in the verification link of the first `.eml` file in `outbox`, once it is there.
async fn emailed_token(outbox: &str) -> Result<String, Box<dyn std::error::Error>> {
    for _ in 0..100 {
        for entry in std::fs::read_dir(outbox).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(entry.path())?
                .replace("=\r\n", "")
                .replace("=\n", "");
            if let Some((_, rest)) = text.split_once("verify-email?token=") {
                return Ok(rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || "-_".contains(*c))
                    .collect());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("no verification email arrived".into())
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let database_url = std::env::var("DATABASE_URL").map_err(|_| "set DATABASE_URL")?;
    let secret = std::env::var("SECRET_KEY").map_err(|_| "set SECRET_KEY")?;
    let outbox = std::env::var("AEGIS_OUTBOX_DIR").unwrap_or_else(|_| {
        std::env::temp_dir()
            .join("aegis-example-outbox")
            .display()
            .to_string()
    });
    println!(
        "signed in and authenticated: {}",
        run(&database_url, &secret, &outbox).await?
    );
    Ok(())
}
