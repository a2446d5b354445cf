//! TLS for `ebiq serve` (`--tls-cert`, `--tls-key`), with the rustls that pgwire is built on.

use std::sync::Arc;

use anyhow::{Context, Result};
use datafusion_postgres::pgwire::tokio::TlsAcceptor;
use datafusion_postgres::pgwire::tokio::tokio_rustls::rustls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::TlsFiles;

/// The acceptor for `files`; an error names the file at fault.
pub(super) fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor> {
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| {
            format!(
                "--tls-cert {}: not a PEM certificate chain",
                files.cert.display()
            )
        })?;
    if certs.is_empty() {
        anyhow::bail!("--tls-cert {}: no certificate in it", files.cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("--tls-key {}: not a PEM private key", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS cannot be set up with this build's protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| {
            format!(
                "--tls-key {} does not go with --tls-cert {}",
                files.key.display(),
                files.cert.display()
            )
        })?;
    // PostgreSQL 17 clients may open TLS directly, naming this protocol.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
