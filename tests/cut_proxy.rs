//! A TCP proxy in front of the suite's PostgreSQL that cuts the first connections it is given:
//! a real connection cut, at the moment a client opens it, which a test cannot time by killing
//! backends from outside.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Where the proxy forwards to: the server's TCP address, or its Unix socket.
enum Upstream {
    Tcp(String),
    Unix(String),
}

impl Upstream {
    fn of(url: &str) -> Upstream {
        let config: postgres::Config = url.parse().expect("a PostgreSQL URL");
        let port = config.get_ports().first().copied().unwrap_or(5432);
        match config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(host)) => Upstream::Tcp(format!("{host}:{port}")),
            Some(postgres::config::Host::Unix(dir)) => {
                Upstream::Unix(format!("{}/.s.PGSQL.{port}", dir.display()))
            }
            None => Upstream::Tcp(format!("127.0.0.1:{port}")),
        }
    }
}

/// A running proxy; it lives as long as the test process.
pub struct CutProxy {
    pub port: u16,
    /// Connections accepted so far, the cut ones included.
    pub accepted: Arc<AtomicUsize>,
}

/// Starts a proxy to the server of `url` that closes the first `cuts` connections as soon as
/// they are accepted, and forwards every later one.
pub fn start(url: &str, cuts: usize) -> CutProxy {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let upstream = Arc::new(Upstream::of(url));
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            if counter.fetch_add(1, Ordering::SeqCst) < cuts {
                drop(client);
                continue;
            }
            let upstream = upstream.clone();
            std::thread::spawn(move || forward(client, &upstream));
        }
    });
    CutProxy { port, accepted }
}

/// `url` with its host and port made the proxy's (user, database and options kept).
pub fn through(url: &str, proxy: &CutProxy) -> String {
    let config: postgres::Config = url.parse().unwrap();
    let user = config.get_user().unwrap_or("postgres");
    let database = config.get_dbname().unwrap_or("postgres");
    let password = config
        .get_password()
        .map(|p| format!(":{}", String::from_utf8_lossy(p)))
        .unwrap_or_default();
    format!(
        "postgresql://{user}{password}@127.0.0.1:{}/{database}",
        proxy.port
    )
}

fn forward(client: TcpStream, upstream: &Upstream) {
    match upstream {
        Upstream::Tcp(address) => {
            let Ok(server) = TcpStream::connect(address) else {
                return;
            };
            pump(client, server, |s| s.try_clone().ok());
        }
        Upstream::Unix(path) => {
            let Ok(server) = UnixStream::connect(path) else {
                return;
            };
            pump(client, server, |s| s.try_clone().ok());
        }
    }
}

/// Copies bytes both ways until either side closes.
fn pump<S: Read + Write + Send + 'static>(
    client: TcpStream,
    server: S,
    clone: impl Fn(&S) -> Option<S>,
) {
    let (Ok(mut client_reader), Some(mut server_writer)) = (client.try_clone(), clone(&server))
    else {
        return;
    };
    let to_server = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_reader, &mut server_writer);
    });
    let (mut server_reader, mut client_writer) = (server, client);
    let _ = std::io::copy(&mut server_reader, &mut client_writer);
    let _ = client_writer.shutdown(std::net::Shutdown::Both);
    let _ = to_server.join();
}
