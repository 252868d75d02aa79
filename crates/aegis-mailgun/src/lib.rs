//! Mail transports for Aegis, behind the domain's [`aegis_domain::Mailer`] port.
//!
//! So far: [`FileOutbox`], the development transport, which writes each message as an `.eml` file
//! into a folder. The Mailgun HTTP API and SMTP transports follow with durable delivery.

mod outbox;

pub use outbox::FileOutbox;
