use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use aegis_domain::{MailError, Mailer, OutgoingEmail, redact_email};
use async_trait::async_trait;

use crate::headers::{mailbox, message_headers};

/// Writes each message as an RFC 5322 `.eml` file (multipart: text and HTML) into a folder, for
/// development: open the file, or copy the link out of it. Refused in production by the service's
/// configuration.
#[derive(Debug)]
pub struct FileOutbox {
    dir: PathBuf,
    counter: AtomicU64,
}

impl FileOutbox {
    /// An outbox writing into `dir`, created on first use.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            counter: AtomicU64::new(0),
        }
    }

    /// The folder messages are written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The message as a mail client would receive it; the headers are encoded as the SMTP transport
/// encodes them, the bodies are left readable (8-bit) so that a link can be copied out.
fn render(email: &OutgoingEmail, boundary: &str) -> Result<String, MailError> {
    let headers = message_headers(
        mailbox(Some(&email.from_name), &email.from_address)?,
        mailbox(None, &email.to)?,
        &email.subject,
    );
    Ok(format!(
        "{headers}MIME-Version: 1.0\r\n\
         Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n\
         --{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n\
         --{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n\
         --{boundary}--\r\n",
        text = email.text,
        html = email.html,
    ))
}

#[async_trait]
impl Mailer for FileOutbox {
    async fn send(&self, email: &OutgoingEmail) -> Result<(), MailError> {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let name = format!("{stamp}-{}-{n}.eml", std::process::id());
        let boundary = format!("aegis-{stamp}-{n}");
        let body = render(email, &boundary)?;
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| MailError::Failed(format!("outbox folder: {e}")))?;
        let path = self.dir.join(name);
        tokio::fs::write(&path, body)
            .await
            .map_err(|e| MailError::Failed(format!("outbox file: {e}")))?;
        tracing::info!(
            to = %redact_email(&email.to),
            file = %path.display(),
            "email written to the development outbox"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_land_as_eml_files_with_both_parts_and_safe_headers() {
        let dir = std::env::temp_dir().join(format!("aegis-outbox-test-{}", std::process::id()));
        let outbox = FileOutbox::new(&dir);
        let email = OutgoingEmail {
            from_name: "Demo".into(),
            from_address: "noreply@demo.example.com".into(),
            to: "user@example.com".into(),
            subject: "Verify\r\nBcc: evil@example.com".into(),
            text: "Open http://x/verify-email?token=abc".into(),
            html: "<a href=\"http://x/verify-email?token=abc\">Verify</a>".into(),
            mailgun_domain: None,
            mailgun_api_key: None,
        };
        outbox.send(&email).await.unwrap();
        let files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
        assert_eq!(files.len(), 1);
        let text = std::fs::read_to_string(files[0].path()).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            text.starts_with("From: Demo <noreply@demo.example.com>\r\nTo: user@example.com\r\n")
        );
        assert!(text.contains("Subject: Verify  Bcc: evil@example.com\r\n"));
        assert!(!text.contains("\r\nBcc:"));
        assert!(text.contains(
            "Content-Type: text/plain; charset=utf-8\r\n\r\nOpen http://x/verify-email?token=abc"
        ));
        assert!(text.contains("Content-Type: text/html; charset=utf-8\r\n\r\n<a href="));
    }

    #[tokio::test]
    async fn display_names_are_encoded_and_recipients_are_one_address() {
        let dir = std::env::temp_dir().join(format!("aegis-outbox-names-{}", std::process::id()));
        let outbox = FileOutbox::new(&dir);
        let mut email = OutgoingEmail {
            from_name: "Ünïcode \"Quoted\", <Evil>\r\nBcc: x@evil.test".into(),
            from_address: "noreply@demo.example.com".into(),
            to: "user@example.com".into(),
            subject: "Vérifiez".into(),
            text: "t".into(),
            html: "h".into(),
            mailgun_domain: None,
            mailgun_api_key: None,
        };
        outbox.send(&email).await.unwrap();
        email.to = "user@example.com, x@evil.test".into();
        assert!(outbox.send(&email).await.is_err());
        let files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
        assert_eq!(files.len(), 1);
        let text = std::fs::read_to_string(files[0].path()).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let head = text.split("\r\n\r\n").next().unwrap();
        assert!(head.starts_with("From: =?utf-8?b?"), "{head}");
        assert_eq!(
            head.matches("\r\nTo: user@example.com\r\n").count(),
            1,
            "{head}"
        );
        assert!(head.contains("\r\nSubject: =?utf-8?b?"), "{head}");
        assert!(
            !head.contains("\r\nBcc:") && !head.contains("Evil"),
            "{head}"
        );
    }
}
