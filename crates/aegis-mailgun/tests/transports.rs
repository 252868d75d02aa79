//! The mail transports against real servers on 127.0.0.1: a fake Mailgun API and an SMTP sink.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aegis_domain::{MailError, Mailer, OutgoingEmail};
use aegis_mailgun::{MailgunMailer, SmtpMailer, SmtpSettings, SmtpTls};
use aegis_test_support::smtp::SmtpSink;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn email(domain: Option<&str>, key: Option<&str>) -> OutgoingEmail {
    OutgoingEmail {
        from_name: "Acme Team".into(),
        from_address: "noreply@acme.example.com".into(),
        to: "User@Example.com".into(),
        subject: "Verify your email for Acme".into(),
        text: "Open https://app.acme.example.com/verify-email?token=abc".into(),
        html: "<p><a href=\"https://app.acme.example.com/verify-email?token=abc\">Verify</a></p>"
            .into(),
        mailgun_domain: domain.map(Into::into),
        mailgun_api_key: key.map(Into::into),
    }
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64_encode(&format!("{user}:{password}")))
}

fn base64_encode(input: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = input.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(char::from(T[(n >> 18) as usize & 63]));
        out.push(char::from(T[(n >> 12) as usize & 63]));
        out.push(if chunk.len() > 1 {
            char::from(T[(n >> 6) as usize & 63])
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            char::from(T[n as usize & 63])
        } else {
            '='
        });
    }
    out
}

#[tokio::test]
async fn mailgun_gets_the_exact_form_and_basic_auth() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v3/mg.global.example.com/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"message\":\"Queued\"}"))
        .expect(1)
        .mount(&server)
        .await;
    let mailer = MailgunMailer::new(
        &server.uri(),
        Some("mg.global.example.com".into()),
        Some("key-global".into()),
    )
    .unwrap();
    mailer.send(&email(None, None)).await.unwrap();
    let requests = server.received_requests().await.unwrap();
    let request = &requests[0];
    assert_eq!(
        request.headers.get("authorization").unwrap(),
        basic("api", "key-global").as_str()
    );
    assert_eq!(
        request.headers.get("content-type").unwrap(),
        "application/x-www-form-urlencoded"
    );
    let fields = form(&request.body);
    let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["from", "to", "subject", "html", "text"]);
    let value = |k: &str| fields.iter().find(|(n, _)| n == k).unwrap().1.clone();
    // The display name is quoted as a header would carry it (the same mailbox as the unquoted form).
    assert_eq!(value("from"), "\"Acme Team\" <noreply@acme.example.com>");
    assert_eq!(value("to"), "User@Example.com");
    assert_eq!(value("subject"), "Verify your email for Acme");
    assert!(value("html").contains("<a href="));
    assert!(value("text").contains("verify-email?token=abc"));
}

#[tokio::test]
async fn per_site_domain_and_key_fall_back_independently() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let mailer = MailgunMailer::new(
        &server.uri(),
        Some("mg.global.example.com".into()),
        Some("key-global".into()),
    )
    .unwrap();
    mailer
        .send(&email(Some("mg.site.example.com"), Some("key-site")))
        .await
        .unwrap();
    mailer
        .send(&email(Some("mg.site.example.com"), None))
        .await
        .unwrap();
    mailer.send(&email(None, Some("key-site"))).await.unwrap();
    mailer.send(&email(Some(""), Some(""))).await.unwrap();
    let seen: Vec<(String, String)> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.url.path().to_owned(),
                r.headers
                    .get("authorization")
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                "/v3/mg.site.example.com/messages".to_owned(),
                basic("api", "key-site")
            ),
            (
                "/v3/mg.site.example.com/messages".to_owned(),
                basic("api", "key-global")
            ),
            (
                "/v3/mg.global.example.com/messages".to_owned(),
                basic("api", "key-site")
            ),
            (
                "/v3/mg.global.example.com/messages".to_owned(),
                basic("api", "key-global")
            ),
        ]
    );
}

#[tokio::test]
async fn without_any_configuration_nothing_is_sent() {
    let server = MockServer::start().await;
    let mailer = MailgunMailer::new(&server.uri(), None, None).unwrap();
    assert!(matches!(
        mailer.send(&email(None, None)).await,
        Err(MailError::NotConfigured(_))
    ));
    assert!(matches!(
        mailer.send(&email(Some("mg.x.com"), None)).await,
        Err(MailError::NotConfigured(_))
    ));
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn anything_but_200_is_a_failure() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string("upstream trouble"))
        .mount(&server)
        .await;
    let mailer =
        MailgunMailer::new(&server.uri(), Some("mg.x.com".into()), Some("k".into())).unwrap();
    match mailer.send(&email(None, None)).await {
        Err(MailError::Failed(text)) => assert!(
            text.contains("500") && text.contains("upstream trouble"),
            "{text}"
        ),
        other => panic!("{other:?}"),
    }
    // A 202 is not 200 either, as in the reference.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&server)
        .await;
    let mailer =
        MailgunMailer::new(&server.uri(), Some("mg.x.com".into()), Some("k".into())).unwrap();
    assert!(mailer.send(&email(None, None)).await.is_err());
}

#[tokio::test]
async fn smtp_delivers_a_message_with_headers_and_both_parts() {
    let sink = SmtpSink::start().await;
    let mailer = SmtpMailer::new(&SmtpSettings {
        host: "127.0.0.1".into(),
        port: sink.port(),
        tls: SmtpTls::None,
        username: None,
        password: None,
    })
    .unwrap();
    mailer.send(&email(None, None)).await.unwrap();
    let received = sink.received();
    assert_eq!(received.len(), 1);
    let mail = &received[0];
    assert_eq!(mail.from, "<noreply@acme.example.com>");
    assert_eq!(mail.to, ["<User@Example.com>"]);
    let data = &mail.data;
    assert!(
        data.contains("From: \"Acme Team\" <noreply@acme.example.com>")
            || data.contains("From: Acme Team <noreply@acme.example.com>"),
        "{data}"
    );
    assert!(data.contains("To: User@Example.com"), "{data}");
    assert!(
        data.contains("Subject: Verify your email for Acme"),
        "{data}"
    );
    assert!(data.contains("multipart/alternative"), "{data}");
    assert!(
        data.contains("Content-Type: text/plain; charset=utf-8"),
        "{data}"
    );
    assert!(
        data.contains("Content-Type: text/html; charset=utf-8"),
        "{data}"
    );
    assert!(data.contains("verify-email?token=abc"), "{data}");
}

#[tokio::test]
async fn webhook_posts_reach_private_addresses_unless_blocked() {
    use aegis_domain::webhook_delivery::WebhookSender as _;
    use aegis_mailgun::HttpWebhookSender;

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&server)
        .await;
    let port = server.address().port();
    let headers = || vec![("X-Aegis-Event", "user.verified".to_owned())];

    let open = HttpWebhookSender::new(false).unwrap();
    let reply = open
        .post(
            &format!("http://127.0.0.1:{port}/hook"),
            headers(),
            "{}".into(),
        )
        .await
        .unwrap();
    assert_eq!((reply.status, reply.body.as_str()), (200, "ok"));

    let blocked = HttpWebhookSender::new(true).unwrap();
    for url in [
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://localhost:{port}/hook"),
        format!("http://[::1]:{port}/hook"),
        "http://169.254.169.254/latest/meta-data".to_owned(),
    ] {
        let err = blocked
            .post(&url, headers(), "{}".into())
            .await
            .unwrap_err();
        assert!(err.contains("blocked"), "{url}: {err}");
    }
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

/// A display name with everything a header must not carry raw: non-ASCII, quotes, a comma, angle
/// brackets, and a CRLF that would start a `Bcc` header.
const HOSTILE_NAME: &str = "Ünïcode \"Quoted\", <Evil>\r\nBcc: x@evil.test";
/// What the recipient's client shows: the same name, on one line.
const SHOWN_NAME: &str = "Ünïcode \"Quoted\", <Evil>  Bcc: x@evil.test";

fn hostile_email() -> OutgoingEmail {
    OutgoingEmail {
        from_name: HOSTILE_NAME.into(),
        subject: "Verify\r\nBcc: y@evil.test".into(),
        ..email(None, None)
    }
}

/// The header section of a raw message, unfolded: one entry per header.
fn header_lines(data: &str) -> Vec<String> {
    let head = data.split("\r\n\r\n").next().unwrap();
    let mut lines: Vec<String> = Vec::new();
    for line in head.split("\r\n") {
        match lines.last_mut() {
            Some(last) if line.starts_with([' ', '\t']) => last.push_str(line),
            _ => lines.push(line.to_owned()),
        }
    }
    lines
}

fn headers_named<'a>(lines: &'a [String], name: &str) -> Vec<&'a str> {
    let prefix = format!("{}:", name.to_ascii_lowercase());
    lines
        .iter()
        .filter(|l| l.to_ascii_lowercase().starts_with(&prefix))
        .map(|l| l[prefix.len()..].trim_start())
        .collect()
}

/// Decodes the RFC 2047 (`=?utf-8?b?…?=`) words of a display name and returns it with the
/// address that follows.
fn decoded_mailbox(value: &str) -> (String, String) {
    use base64::Engine as _;
    let (name, address) = value
        .rsplit_once(" <")
        .expect("a display name and an address");
    let mut bytes = Vec::new();
    for word in name.split_whitespace() {
        let encoded = word
            .strip_prefix("=?utf-8?b?")
            .and_then(|w| w.strip_suffix("?="))
            .unwrap_or_else(|| panic!("not an encoded word: {word} in {value}"));
        bytes.extend(
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .unwrap(),
        );
    }
    (
        String::from_utf8(bytes).unwrap(),
        address.trim_end_matches('>').to_owned(),
    )
}

#[tokio::test]
async fn smtp_headers_carry_nothing_raw() {
    let sink = SmtpSink::start().await;
    let mailer = SmtpMailer::new(&SmtpSettings {
        host: "127.0.0.1".into(),
        port: sink.port(),
        tls: SmtpTls::None,
        username: None,
        password: None,
    })
    .unwrap();
    mailer.send(&hostile_email()).await.unwrap();
    let received = sink.received();
    assert_eq!(received.len(), 1);
    let mail = &received[0];
    assert_eq!(mail.to, ["<User@Example.com>"], "no other recipient");
    let lines = header_lines(&mail.data);
    let from = headers_named(&lines, "From");
    assert_eq!(from.len(), 1, "{lines:#?}");
    assert_eq!(
        decoded_mailbox(from[0]),
        (SHOWN_NAME.to_owned(), "noreply@acme.example.com".to_owned())
    );
    assert!(headers_named(&lines, "Bcc").is_empty(), "{lines:#?}");
    assert_eq!(headers_named(&lines, "To"), ["User@Example.com"]);
    assert_eq!(
        headers_named(&lines, "Subject"),
        ["Verify  Bcc: y@evil.test"]
    );
    assert!(!mail.data.contains("\r\nBcc:"), "{}", mail.data);
}

#[tokio::test]
async fn smtp_refuses_a_recipient_that_is_not_one_address() {
    let sink = SmtpSink::start().await;
    let mailer = SmtpMailer::new(&SmtpSettings {
        host: "127.0.0.1".into(),
        port: sink.port(),
        tls: SmtpTls::None,
        username: None,
        password: None,
    })
    .unwrap();
    for to in [
        "user@example.com, x@evil.test",
        "user@example.com\r\nBcc: x@evil.test",
        "User <user@example.com>",
    ] {
        let email = OutgoingEmail {
            to: to.into(),
            ..email(None, None)
        };
        assert!(
            matches!(mailer.send(&email).await, Err(MailError::Failed(_))),
            "{to:?}"
        );
    }
    assert!(sink.received().is_empty());
}

#[tokio::test]
async fn mailgun_fields_carry_nothing_raw() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let mailer =
        MailgunMailer::new(&server.uri(), Some("mg.x.com".into()), Some("k".into())).unwrap();
    mailer.send(&hostile_email()).await.unwrap();
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let fields = form(&requests[0].body);
    let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["from", "to", "subject", "html", "text"]);
    let value = |k: &str| fields.iter().find(|(n, _)| n == k).unwrap().1.clone();
    let from = value("from");
    assert!(!from.contains(['\r', '\n']), "{from:?}");
    assert_eq!(
        decoded_mailbox(&from),
        (SHOWN_NAME.to_owned(), "noreply@acme.example.com".to_owned())
    );
    assert_eq!(value("to"), "User@Example.com");
    assert_eq!(value("subject"), "Verify  Bcc: y@evil.test");

    // A recipient that is not exactly one address is never posted.
    let email = OutgoingEmail {
        to: "user@example.com, x@evil.test".into(),
        ..email(None, None)
    };
    assert!(matches!(
        mailer.send(&email).await,
        Err(MailError::Failed(_))
    ));
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}
