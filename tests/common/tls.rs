//! TLS for the test bed: a certificate authority of the test's own with a certificate for
//! 127.0.0.1, and nginx's stream module terminating TLS in front of a plain TCP server (RabbitMQ,
//! nginx-rtmp), as a load balancer does in front of a broker or an RTMPS ingest.

use super::{Service, free_port, wait_for_port};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA and a server certificate signed by it, as PEM files in `dir`.
pub struct TestCertificates {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl TestCertificates {
    pub fn create(dir: &Path) -> TestCertificates {
        std::fs::create_dir_all(dir).unwrap();
        let file = |name: &str| dir.join(name).to_string_lossy().to_string();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl").args(args).output().expect("openssl runs");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let (ca, ca_key) = (file("ca.pem"), file("ca.key"));
        openssl(
            &[
                &["req", "-x509"][..],
                &ec,
                &[
                    "-days",
                    "2",
                    "-subj",
                    "/CN=egress test CA",
                    "-keyout",
                    &ca_key,
                    "-out",
                    &ca,
                ],
                &["-addext", "basicConstraints=critical,CA:TRUE"],
                &["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            ]
            .concat(),
        );
        let (csr, key, cert) = (file("server.csr"), file("server.key"), file("server.pem"));
        openssl(
            &[
                &["req"][..],
                &ec,
                &["-subj", "/CN=127.0.0.1", "-keyout", &key, "-out", &csr],
            ]
            .concat(),
        );
        let extensions = file("server.ext");
        std::fs::write(
            &extensions,
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &extensions,
            "-out",
            &cert,
        ]);
        TestCertificates {
            ca: ca.into(),
            server_cert: cert.into(),
            server_key: key.into(),
        }
    }

    /// The system's CA bundle with the test CA added.
    pub fn system_bundle_with_ca(&self, path: &Path) -> PathBuf {
        let mut bundle = std::fs::read("/etc/ssl/certs/ca-certificates.crt").unwrap_or_default();
        bundle.extend(std::fs::read(&self.ca).unwrap());
        std::fs::write(path, bundle).unwrap();
        path.to_owned()
    }
}

/// nginx terminating TLS on `port` and passing the bytes on to `backend` on loopback.
pub struct TlsFront {
    pub port: u16,
    _nginx: Service,
}

impl TlsFront {
    pub fn start(dir: &Path, certificates: &TestCertificates, backend: u16) -> TlsFront {
        TlsFront::start_to(dir, certificates, &format!("127.0.0.1:{backend}"))
    }

    /// In front of `backend` (`HOST:PORT`), which may be in a network namespace of the tests.
    pub fn start_to(dir: &Path, certificates: &TestCertificates, backend: &str) -> TlsFront {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let config = format!(
            "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n\
             daemon off;\nmaster_process off;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             stream {{ server {{ listen 127.0.0.1:{port} ssl;\n\
               ssl_certificate {cert}; ssl_certificate_key {key};\n\
               proxy_pass {backend}; }} }}\n",
            dir = dir.display(),
            cert = certificates.server_cert.display(),
            key = certificates.server_key.display(),
        );
        std::fs::write(dir.join("nginx.conf"), config).unwrap();
        let mut command = Command::new("nginx");
        command
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("error.log"));
        let nginx = Service::start("nginx (TLS)", &mut command);
        wait_for_port(port, std::time::Duration::from_secs(10));
        TlsFront { port, _nginx: nginx }
    }
}
