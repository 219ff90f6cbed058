//! Why an RTMP destination did not take a push, told by error kinds rather than by the text of
//! the element's error: GStreamer's RTMP sink reports every failed connection alike, so a
//! failed `rtmps://` push is looked at again with a TLS handshake of our own (the system's CAs,
//! as GStreamer's TLS trusts them), whose typed certificate error says when retrying cannot help.

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RtmpFailure {
    /// The destination's certificate is not trusted: a new try gets the same answer.
    #[error("the destination's TLS certificate is not trusted ({0})")]
    UntrustedCertificate(String),
    /// Anything a later try may not meet (refused, reset, unreachable, a server going away).
    #[error("{0}")]
    Transient(String),
}

impl RtmpFailure {
    pub fn retriable(&self) -> bool {
        matches!(self, RtmpFailure::Transient(_))
    }
}

/// Classifies a failed push to `url`; `error` is what the pipeline said.
pub fn classify(url: &str, error: &str) -> RtmpFailure {
    let transient = || RtmpFailure::Transient(error.to_owned());
    let Ok(parsed) = url::Url::parse(url) else {
        return transient();
    };
    if parsed.scheme() != "rtmps" {
        return transient();
    }
    let (Some(host), port) = (parsed.host_str(), parsed.port().unwrap_or(443)) else {
        return transient();
    };
    match certificate_problem(host, port) {
        Some(problem) => RtmpFailure::UntrustedCertificate(problem),
        None => transient(),
    }
}

/// What a TLS handshake with `host:port` says of its certificate, when it refuses it.
fn certificate_problem(host: &str, port: u16) -> Option<String> {
    let config = crate::tls::system_client_config().ok()?;
    let name = rustls_pki_types::ServerName::try_from(host.to_owned()).ok()?;
    let address = (host, port).to_socket_addrs().ok()?.next()?;
    let mut tcp = TcpStream::connect_timeout(&address, PROBE_TIMEOUT).ok()?;
    tcp.set_read_timeout(Some(PROBE_TIMEOUT)).ok()?;
    tcp.set_write_timeout(Some(PROBE_TIMEOUT)).ok()?;
    let mut tls = rustls::ClientConnection::new(Arc::clone(&config), name).ok()?;
    while tls.is_handshaking() {
        if let Err(e) = tls.complete_io(&mut tcp) {
            return match e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            {
                Some(rustls::Error::InvalidCertificate(why)) => Some(format!("{why:?}")),
                _ => None,
            };
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_rtmp_and_unreachable_rtmps_failures_are_retried() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let refused = classify(&format!("rtmps://127.0.0.1:{closed}/live"), "Could not connect");
        assert_eq!(refused, RtmpFailure::Transient("Could not connect".into()));
        assert!(refused.retriable());
        assert!(classify("rtmp://127.0.0.1:1/live", "x").retriable());
        assert!(!RtmpFailure::UntrustedCertificate("UnknownIssuer".into()).retriable());
    }
}
