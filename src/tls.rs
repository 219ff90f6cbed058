//! What every outgoing TLS connection of the worker's own clients (Janus over `wss://`, WHEP
//! over `https://`) trusts: the system's certificate authorities, plus one CA file of the
//! operator's (`EGRESS_TLS_CA_FILE`, or `tls_ca_file` in the worker configuration) for a
//! private PKI.

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

static CA_FILE: OnceLock<Option<PathBuf>> = OnceLock::new();

/// Sets the operator's CA file once, at start-up; later calls are ignored.
pub fn set_ca_file(path: Option<PathBuf>) {
    let _ = CA_FILE.set(path);
}

fn ca_file() -> Option<&'static Path> {
    CA_FILE
        .get_or_init(|| std::env::var_os("EGRESS_TLS_CA_FILE").map(PathBuf::from))
        .as_deref()
}

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("tls_ca_file: cannot read certificates from {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error("no trusted certificate authority: the system has none and no tls_ca_file is set")]
    NoRoots,
}

/// The system's CAs and the operator's, as DER certificates.
pub fn trusted_certificates() -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let mut certificates = rustls_native_certs::load_native_certs().certs;
    if let Some(path) = ca_file() {
        let problem = |reason: String| TlsSetupError::CaFile {
            path: path.display().to_string(),
            reason,
        };
        let extra = CertificateDer::pem_file_iter(path)
            .map_err(|e| problem(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| problem(e.to_string()))?;
        if extra.is_empty() {
            return Err(problem("no PEM certificate in it".into()));
        }
        certificates.extend(extra);
    }
    if certificates.is_empty() {
        return Err(TlsSetupError::NoRoots);
    }
    Ok(certificates)
}

/// A rustls client configuration trusting `trusted_certificates`.
pub fn client_config() -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
    config_trusting(trusted_certificates()?)
}

/// A rustls client configuration trusting the system's CAs alone: what GStreamer's own TLS
/// (RTMPS) trusts, for telling why one of its connections failed.
pub fn system_client_config() -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
    let system = rustls_native_certs::load_native_certs().certs;
    if system.is_empty() {
        return Err(TlsSetupError::NoRoots);
    }
    config_trusting(system)
}

fn config_trusting(
    certificates: Vec<CertificateDer<'static>>,
) -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    // A system bundle may hold a certificate rustls cannot parse; the others still count.
    roots.add_parsable_certificates(certificates);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The roots for the `ureq` HTTP client.
pub fn ureq_roots() -> Result<ureq::tls::RootCerts, TlsSetupError> {
    let certificates: Vec<ureq::tls::Certificate<'static>> = trusted_certificates()?
        .iter()
        .map(|der| ureq::tls::Certificate::from_der(der.as_ref()).to_owned())
        .collect();
    Ok(ureq::tls::RootCerts::new_with_certs(&certificates))
}
