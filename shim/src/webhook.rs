//! Alerts POSTed to a webhook (`alerts_webhook` in the config), such as Falcosidekick's.
//!
//! The supervisor never waits for the network: [`post`] hands the alert to one sender thread of
//! the shim through a bounded queue and returns. A full queue drops the alert (it is still in the
//! alert log) and counts it; a failed delivery is logged. Each alert is one `HTTP/1.1` POST of
//! `application/json` on its own connection, with timeouts; a status other than 2xx is a failed
//! delivery. Only plain `http://` is spoken (the config refuses other URLs).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::Duration;

use chaperone_config::HttpUrl;
use serde_json::Value;
use tracing::warn;

use crate::error::chain;

/// Alerts waiting for delivery, at most.
const QUEUE_LEN: usize = 256;
/// Connect, write and read timeout of one delivery.
const TIMEOUT: Duration = Duration::from_secs(3);

/// The shim's one queue, started by the first alert posted.
static QUEUE: OnceLock<Queue> = OnceLock::new();

/// Queues `alert` for delivery to `url` (an `http://` URL the config validated).
pub fn post(url: &str, alert: &Value) {
    let url = match HttpUrl::parse(url) {
        Ok(u) => u,
        Err(reason) => {
            warn!(reason, "alerts_webhook is not usable");
            return;
        }
    };
    let Ok(body) = serde_json::to_vec(alert) else {
        return;
    };
    QUEUE
        .get_or_init(|| Queue::start(QUEUE_LEN, deliver))
        .offer(url, body);
}

/// Alerts waiting for one sender thread, and how many a full queue dropped.
struct Queue {
    sender: SyncSender<(HttpUrl, Vec<u8>)>,
    dropped: AtomicU64,
}

impl Queue {
    /// A queue of `len` alerts whose thread hands each to `send`; a failure is logged.
    fn start<F>(len: usize, mut send: F) -> Self
    where
        F: FnMut(&HttpUrl, &[u8]) -> std::io::Result<u16> + Send + 'static,
    {
        let (sender, alerts) = sync_channel::<(HttpUrl, Vec<u8>)>(len);
        let spawned = std::thread::Builder::new()
            .name("chaperone-webhook".into())
            .spawn(move || {
                for (url, body) in alerts {
                    if let Err(e) = send(&url, &body) {
                        warn!(host = %url.host, port = url.port, error = chain(&e), "alert webhook delivery failed");
                    }
                }
            });
        if let Err(e) = spawned {
            warn!(
                error = chain(&e),
                "cannot start the webhook thread; alerts stay in the alert log only"
            );
        }
        Self {
            sender,
            dropped: AtomicU64::new(0),
        }
    }

    /// Queues one alert without waiting: false when it was dropped (the queue is full, or its
    /// thread is gone), which is counted and logged at the 1st, 2nd, 4th, 8th ... drop.
    fn offer(&self, url: HttpUrl, body: Vec<u8>) -> bool {
        match self.sender.try_send((url, body)) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped.is_power_of_two() {
                    warn!(
                        dropped,
                        "alert webhook queue full: alerts dropped (they are in the alert log)"
                    );
                }
                false
            }
        }
    }
}

/// POSTs `body` to `url`; returns the response status (an error unless 2xx).
pub fn deliver(url: &HttpUrl, body: &[u8]) -> std::io::Result<u16> {
    use std::io::{Error, ErrorKind};
    let addr = (url.host.as_str(), url.port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("{} has no address", url.host)))?;
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    let host = if url.host.contains(':') {
        format!("[{}]:{}", url.host, url.port)
    } else {
        format!("{}:{}", url.host, url.port)
    };
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: chaperone/{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        url.path,
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    // One write: a second small one could wait on Nagle's algorithm for the first's ACK.
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    stream.write_all(&request)?;
    // The status line is enough; the rest of the answer is not needed.
    let mut answer = [0_u8; 64];
    let mut len = 0;
    while len < answer.len() {
        let n = stream.read(&mut answer[len..])?;
        if n == 0 {
            break;
        }
        len += n;
        if answer[..len].contains(&b'\n') {
            break;
        }
    }
    let line = String::from_utf8_lossy(&answer[..len]);
    let status = line
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidData,
                format!("not an HTTP answer: {line:?}"),
            )
        })?;
    if (200..300).contains(&status) {
        Ok(status)
    } else {
        Err(Error::other(format!("the webhook answered {status}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::net::TcpListener;

    /// Serves one request with `status`; returns the request's head and body.
    fn serve_once(
        listener: TcpListener,
        status: &'static str,
    ) -> std::thread::JoinHandle<(String, String)> {
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = std::io::BufReader::new(stream);
            let mut head = String::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let mut stream = reader.into_inner();
            write!(stream, "HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").unwrap();
            (head, String::from_utf8(body).unwrap())
        })
    }

    #[test]
    fn an_alert_is_posted_as_json_and_non_2xx_is_an_error() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = serve_once(listener, "200 OK");
        let url = HttpUrl::parse(&format!("http://127.0.0.1:{port}/alerts?x=1")).unwrap();
        assert_eq!(deliver(&url, br#"{"rule":"r"}"#).unwrap(), 200);
        let (head, body) = server.join().unwrap();
        assert!(head.starts_with("POST /alerts?x=1 HTTP/1.1\r\n"), "{head}");
        assert!(head.contains("Content-Type: application/json"), "{head}");
        assert_eq!(body, r#"{"rule":"r"}"#);

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = serve_once(listener, "500 Internal Server Error");
        let url = HttpUrl::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let err = deliver(&url, b"{}").unwrap_err();
        assert!(err.to_string().contains("500"), "{err}");
        server.join().unwrap();
    }

    #[test]
    fn post_returns_at_once_and_delivers_in_the_background() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = serve_once(listener, "204 No Content");
        post(
            &format!("http://127.0.0.1:{port}/"),
            &serde_json::json!({"output": "x"}),
        );
        let (_, body) = server.join().unwrap();
        assert_eq!(body, r#"{"output":"x"}"#);
    }

    /// A server that takes the connection and never answers: the delivery gives up after
    /// its timeout (the sender thread then takes the next alert).
    #[test]
    fn a_server_that_never_answers_is_an_error_after_the_timeout() {
        // Connections queue in the listener's backlog; nothing accepts or reads them.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = HttpUrl::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let started = std::time::Instant::now();
        let err = deliver(&url, b"{}").unwrap_err();
        let took = started.elapsed();
        assert!(
            took >= TIMEOUT.mul_f32(0.9),
            "it waited for the answer: {took:?}: {err}"
        );
        // Only a hang is told apart (no tight bound: the machines are noisy).
        assert!(took < Duration::from_secs(60), "not a hang: {took:?}");
        drop(listener);
    }

    /// While the thread is busy with one alert, the queue takes `len` more; the next is dropped
    /// and counted at once, never waited for, and the queued ones are delivered in order.
    #[test]
    fn a_full_queue_drops_the_alert_and_counts_it_without_waiting() {
        use std::sync::mpsc::channel;
        const WAIT: std::time::Duration = std::time::Duration::from_secs(10);
        let (entered, delivering) = channel::<Vec<u8>>();
        let (release, gate) = channel::<()>();
        let queue = Queue::start(2, move |_, body| {
            entered.send(body.to_vec()).unwrap();
            gate.recv().unwrap();
            Ok(204)
        });
        let url = HttpUrl::parse("http://127.0.0.1:9/").unwrap();
        assert!(queue.offer(url.clone(), b"1".to_vec()));
        assert_eq!(
            delivering.recv_timeout(WAIT).unwrap(),
            b"1",
            "the thread holds it"
        );
        assert!(queue.offer(url.clone(), b"2".to_vec()));
        assert!(queue.offer(url.clone(), b"3".to_vec()));
        assert!(
            !queue.offer(url.clone(), b"4".to_vec()),
            "a queue of 2 is full"
        );
        assert!(!queue.offer(url, b"5".to_vec()));
        assert_eq!(queue.dropped.load(Ordering::Relaxed), 2);
        for _ in 0..3 {
            release.send(()).unwrap();
        }
        assert_eq!(delivering.recv_timeout(WAIT).unwrap(), b"2");
        assert_eq!(delivering.recv_timeout(WAIT).unwrap(), b"3");
        // The thread ends with the queue, and nothing dropped was sent.
        drop(queue);
        assert_eq!(
            delivering.recv_timeout(WAIT),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
        );
    }

    #[test]
    fn nobody_listening_is_an_error_not_a_hang() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = HttpUrl::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        deliver(&url, b"{}").unwrap_err();
    }
}
