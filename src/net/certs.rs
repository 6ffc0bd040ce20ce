//! The server side of the TLS listeners, built from the PEM files (certificate chain,
//! key, and the CA bundle of client certificates) and built again when they change:
//! a change is looked for every `tls_reload_interval_ms` and at SIGHUP (`server.rs`).
//! New handshakes take the new certificates; connections already open keep theirs.
//! Files that fail to load (a key that does not match the certificate, a half-written
//! file) leave the previous configuration in place, with an error in the log, and are
//! tried again once they change again.

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::config::TlsFiles;

/// What a file looked like when it was last loaded: a change of any part is a change.
#[derive(Clone, Debug, PartialEq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

/// The TLS configuration now in use, and the files it comes from.
pub struct TlsSource {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
    /// The stamps of the files at the last attempt to load them.
    loaded: Mutex<Vec<Option<Stamp>>>,
}

impl TlsSource {
    /// Load the files (an error names the file at fault).
    pub fn load(files: &TlsFiles) -> Result<Arc<TlsSource>, String> {
        let stamps = stamps(files);
        let config = server_config(files)?;
        Ok(Arc::new(TlsSource {
            files: files.clone(),
            current: RwLock::new(config),
            loaded: Mutex::new(stamps),
        }))
    }

    /// The configuration for a new handshake.
    pub fn config(&self) -> Arc<ServerConfig> {
        // A poisoned lock still holds a whole Arc: the swap is one assignment.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Load the files again if any changed since the last attempt. Ok(true): new
    /// certificates are in use; Ok(false): nothing changed; Err: they changed but do
    /// not load, and the previous ones stay.
    pub fn reload_if_changed(&self) -> Result<bool, String> {
        let now = stamps(&self.files);
        {
            let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
            if *loaded == now {
                return Ok(false);
            }
            *loaded = now;
        }
        let config = server_config(&self.files)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = config;
        Ok(true)
    }
}

fn stamps(files: &TlsFiles) -> Vec<Option<Stamp>> {
    use std::os::unix::fs::MetadataExt;
    [&files.cert, &files.key, &files.client_ca]
        .into_iter()
        .map(|path| {
            let meta = std::fs::metadata(path.as_ref()?).ok()?;
            Some(Stamp {
                modified: meta.modified().ok(),
                len: meta.len(),
                inode: meta.ino(),
            })
        })
        .collect()
}

/// The server side of every TLS listener, from the PEM files.
fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, String> {
    let (Some(cert), Some(key)) = (&files.cert, &files.key) else {
        return Err("TLS needs tls_cert_file and tls_key_file".into());
    };
    let certs = read_certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("tls_key_file {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in read_certs(ca)? {
                roots
                    .add(c)
                    .map_err(|e| format!("tls_client_ca_file {}: {e}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("tls_client_ca_file {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls_cert_file {}: {e}", cert.display()))?;
    Ok(Arc::new(config))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(certs)
}
