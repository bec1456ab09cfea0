//! TLS for the test server: a certificate chain minted per server, and a
//! rustls stream that can be read and written from two threads at once.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex, MutexGuard};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection};

/// A server configuration for `localhost` and `127.0.0.1`, and the PEM of the
/// CA that signed its certificate.
///
/// A CA plus a leaf, rather than one self-signed certificate, because that is
/// what a private deployment looks like, and it makes clients build and check
/// a real chain instead of matching a pinned certificate.
pub fn server_config() -> (Arc<ServerConfig>, String) {
    let ca_key = KeyPair::generate().expect("generate CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "git-relay test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign CA");

    let leaf_key = KeyPair::generate().expect("generate server key");
    let mut leaf_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("server cert params");
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf_params
        .signed_by(&leaf_key, &ca_cert, &ca_key)
        .expect("sign server cert");

    // Name the provider instead of relying on a process-wide default, which
    // panics as soon as a second crypto backend is compiled in.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf_cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .expect("server certificate");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    (Arc::new(config), ca_cert.pem())
}

/// Splits a TLS connection into halves usable from different threads.
///
/// The server streams a request body into the CGI on one thread while it sends
/// the response on another, and rustls' `StreamOwned` cannot do that: a read
/// blocked in it would hold the connection. Here the socket is only ever
/// waited on with the lock released, and the lock is held just long enough to
/// move bytes in or out of the rustls state.
pub fn split(conn: ServerConnection, socket: TcpStream) -> io::Result<(TlsReader, TlsWriter)> {
    let conn = Arc::new(Mutex::new(conn));
    let reader = TlsReader {
        conn: Arc::clone(&conn),
        socket: socket.try_clone()?,
        replies: socket.try_clone()?,
        raw: vec![0; 32 * 1024].into_boxed_slice(),
        start: 0,
        end: 0,
    };
    Ok((reader, TlsWriter { conn, socket }))
}

pub struct TlsReader {
    conn: Arc<Mutex<ServerConnection>>,
    socket: TcpStream,
    /// Where handshake messages and alerts that reading provokes are sent.
    replies: TcpStream,
    /// Ciphertext read from the socket that rustls has not taken yet.
    raw: Box<[u8]>,
    start: usize,
    end: usize,
}

pub struct TlsWriter {
    conn: Arc<Mutex<ServerConnection>>,
    socket: TcpStream,
}

fn lock(conn: &Mutex<ServerConnection>) -> io::Result<MutexGuard<'_, ServerConnection>> {
    conn.lock()
        .map_err(|_| io::Error::other("TLS connection state poisoned"))
}

impl Read for TlsReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut conn = lock(&self.conn)?;
            match conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            // Feed ciphertext only once the plaintext buffer is drained, so
            // rustls never refuses it for being full.
            if self.start < self.end {
                let taken = conn.read_tls(&mut &self.raw[self.start..self.end])?;
                if taken == 0 {
                    return Err(io::Error::other("rustls accepted no ciphertext"));
                }
                self.start += taken;
                let processed = conn.process_new_packets();
                // Handshake replies, and alerts on failure, must go out either way.
                while conn.wants_write() {
                    conn.write_tls(&mut self.replies)?;
                }
                processed.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                continue;
            }
            drop(conn);
            let n = self.socket.read(&mut self.raw)?;
            if n == 0 {
                // git's curl often closes without close_notify; the HTTP
                // framing already tells whether anything was cut short.
                return Ok(0);
            }
            self.start = 0;
            self.end = n;
        }
    }
}

impl Write for TlsWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut conn = lock(&self.conn)?;
        let n = conn.writer().write(buf)?;
        while conn.wants_write() {
            conn.write_tls(&mut self.socket)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // `write` already handed every record to the socket.
        Ok(())
    }
}

impl Drop for TlsWriter {
    fn drop(&mut self) {
        if let Ok(mut conn) = lock(&self.conn) {
            conn.send_close_notify();
            while conn.wants_write() {
                if conn.write_tls(&mut self.socket).is_err() {
                    break;
                }
            }
        }
    }
}
