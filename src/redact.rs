//! Keeping secrets out of what people read: logs at every level, events, errors and graphs.
//!
//! Two rules apply everywhere: the user-info of any URL (`scheme://user:password@host`) is
//! hidden, and the secrets of every running job (stream keys, storage keys, PINs, tokens) are
//! replaced where they stand as whole values, never inside longer words.

use std::io::Write;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// What stands in for a secret.
pub const MASK: &str = "***";

/// Secrets shorter than this cannot be told apart from ordinary text and are refused.
pub const SHORTEST_SECRET: usize = 4;

/// The secrets of the jobs running in this process, by registration.
static ACTIVE: RwLock<Vec<(u64, Vec<String>)>> = RwLock::new(Vec::new());
static NEXT: AtomicU64 = AtomicU64::new(1);

/// Keeps a job's secrets out of every log line while it lives.
pub struct Registration(u64);

impl Drop for Registration {
    fn drop(&mut self) {
        let mut active = ACTIVE.write().unwrap_or_else(|p| p.into_inner());
        active.retain(|(id, _)| *id != self.0);
    }
}

/// Registers secrets to be removed from every log line until the registration is dropped.
pub fn register<S: AsRef<str>>(secrets: &[S]) -> Registration {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let secrets = secrets
        .iter()
        .map(|s| s.as_ref().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    ACTIVE
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .push((id, secrets));
    Registration(id)
}

/// The text with URL user-info hidden and the given secrets replaced as whole values.
pub fn redact<S: AsRef<str>>(text: &str, secrets: &[S]) -> String {
    let mut out = url_userinfo(text);
    for secret in secrets {
        out = whole_values(&out, secret.as_ref());
    }
    out
}

/// The text with URL user-info hidden and the secrets of every registered job replaced.
pub fn redact_registered(text: &str) -> String {
    let active = ACTIVE.read().unwrap_or_else(|p| p.into_inner());
    let secrets: Vec<&str> = active
        .iter()
        .flat_map(|(_, s)| s.iter().map(String::as_str))
        .collect();
    redact(text, &secrets)
}

/// A character that continues a word: a secret next to one is part of other text.
fn joins(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

/// Replaces each occurrence of `secret` that is not part of a longer word.
pub fn whole_values(text: &str, secret: &str) -> String {
    if secret.is_empty() || !text.contains(secret) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut before: Option<char> = None;
    while let Some(at) = rest.find(secret) {
        let ahead = &rest[..at];
        let previous = ahead.chars().next_back().or(before);
        let after = rest[at + secret.len()..].chars().next();
        out.push_str(ahead);
        let bounded = !previous.is_some_and(joins) && !after.is_some_and(joins);
        if bounded {
            out.push_str(MASK);
        } else {
            out.push_str(secret);
        }
        before = secret.chars().next_back();
        rest = &rest[at + secret.len()..];
    }
    out.push_str(rest);
    out
}

/// Hides the user-info of every URL in a text: `rtmp://u:pw@host/x` becomes `rtmp://***@host/x`.
pub fn url_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#' | '"' | '\'' | '<' | '>' | '\\') || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match authority.rfind('@') {
            Some(userinfo_end) => {
                out.push_str(MASK);
                out.push_str(&authority[userinfo_end..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

/// Standard error, cleaned of URL user-info and registered secrets: the log writer.
#[derive(Clone, Copy, Default)]
pub struct RedactingStderr;

impl Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // The log formatter hands over one whole line per write.
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(redact_registered(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingStderr;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingStderr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_replaced_only_as_a_whole_value() {
        assert_eq!(whole_values("rtmp://h/live/kkkk", "kkkk"), "rtmp://h/live/***");
        assert_eq!(whole_values("kkkk-2 kkkk", "kkkk"), "kkkk-2 ***");
        assert_eq!(whole_values("break the bank", "bank"), "break the ***");
        assert_eq!(whole_values("banking", "bank"), "banking");
        assert_eq!(whole_values("key=abcd&x=abcd.", "abcd"), "key=***&x=***.");
        assert_eq!(whole_values("abcdabcd", "abcd"), "abcdabcd");
    }

    #[test]
    fn url_user_info_is_hidden() {
        assert_eq!(
            url_userinfo("connecting to rtmp://u:PASSWORD@host:1935/live now"),
            "connecting to rtmp://***@host:1935/live now"
        );
        assert_eq!(
            url_userinfo("{\"url\":\"https://ak:sk@s3.local/b\"} and http://plain/x"),
            "{\"url\":\"https://***@s3.local/b\"} and http://plain/x"
        );
        assert_eq!(url_userinfo("mail a@b.c, no url"), "mail a@b.c, no url");
        assert_eq!(url_userinfo("x://@h"), "x://***@h");
    }

    #[test]
    fn registered_secrets_leave_with_their_registration() {
        let registration = register(&["s3cr3t-value-1"]);
        assert_eq!(redact_registered("key s3cr3t-value-1"), "key ***");
        drop(registration);
        assert_eq!(redact_registered("key s3cr3t-value-1"), "key s3cr3t-value-1");
    }
}
