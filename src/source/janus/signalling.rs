//! The Janus API over WebSocket: sessions, plugin handles, requests matched to their answers by
//! transaction, asynchronous events, keepalives. Blocking, for one thread.

use serde_json::{Value, json};
use std::collections::VecDeque;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

/// Janus drops a session after 60 s without a message; keep well inside that.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(20);
/// How long a blocking read waits before the loop looks at keepalives and deadlines.
const READ_SLICE: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum JanusError {
    /// The connection could not be made or was lost.
    #[error("{0}")]
    Connection(String),
    /// Janus or the plugin answered with an error.
    #[error("{reason} (Janus error {code})")]
    Refused { code: i64, reason: String },
    #[error("no answer from Janus to {0} in time")]
    Timeout(String),
    /// The TLS handshake was refused (an untrusted or wrong certificate): trying again will
    /// not help.
    #[error("{0}")]
    Tls(String),
}

pub type Result<T> = std::result::Result<T, JanusError>;

/// A plugin's answer: its data and, when it carries one, an SDP offer or answer.
#[derive(Debug, Clone)]
pub struct PluginReply {
    pub data: Value,
    pub jsep: Option<Value>,
}

/// The connection under the WebSocket: plain for `ws://`, TLS for `wss://`.
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => tls.get_ref(),
        }
    }
}

impl std::io::Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.read(buf),
            Stream::Tls(tls) => tls.read(buf),
        }
    }
}

impl std::io::Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.write(buf),
            Stream::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(tcp) => tcp.flush(),
            Stream::Tls(tls) => tls.flush(),
        }
    }
}

/// Opens TLS to `host` over `tcp` and completes the handshake, so that a certificate the
/// worker does not trust is told as such rather than as a failed WebSocket upgrade.
fn tls_over(tcp: TcpStream, host: &str) -> Result<Stream> {
    let config = crate::tls::client_config().map_err(|e| JanusError::Connection(e.to_string()))?;
    let name = rustls_pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| JanusError::Connection(format!("bad TLS server name {host}: {e}")))?;
    let connection = rustls::ClientConnection::new(config, name)
        .map_err(|e| JanusError::Connection(format!("cannot start TLS with {host}: {e}")))?;
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).map_err(|e| {
            let refused = e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>());
            let message = format!("TLS with Janus at {host} failed: {e}");
            match refused {
                true => JanusError::Tls(message),
                false => JanusError::Connection(message),
            }
        })?;
    }
    Ok(Stream::Tls(Box::new(tls)))
}

pub struct JanusClient {
    ws: WebSocket<Stream>,
    session: Option<u64>,
    next_transaction: u64,
    /// Asynchronous messages read while waiting for an answer, in arrival order.
    queued: VecDeque<Value>,
    last_sent: Instant,
}

impl JanusClient {
    /// Opens the WebSocket (subprotocol `janus-protocol`) and creates a Janus session.
    pub fn connect(url: &str, timeout: Duration) -> Result<Self> {
        let parsed = url::Url::parse(url).map_err(|e| JanusError::Connection(format!("bad URL: {e}")))?;
        let secure = match parsed.scheme() {
            "ws" => false,
            "wss" => true,
            other => {
                return Err(JanusError::Connection(format!(
                    "{other}:// is not supported; use ws:// or wss://"
                )));
            }
        };
        let host = parsed.host_str().unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = parsed.port().unwrap_or(if secure { 443 } else { 80 });
        let address = (host, port)
            .to_socket_addrs()
            .map_err(|e| JanusError::Connection(format!("cannot resolve {host}: {e}")))?
            .next()
            .ok_or_else(|| JanusError::Connection(format!("no address for {host}")))?;
        let stream = TcpStream::connect_timeout(&address, timeout)
            .map_err(|e| JanusError::Connection(format!("cannot reach Janus at {host}:{port}: {e}")))?;
        stream.set_read_timeout(Some(timeout)).ok();
        stream.set_nodelay(true).ok();
        let stream = match secure {
            true => tls_over(stream, host)?,
            false => Stream::Plain(stream),
        };
        let mut request = url
            .into_client_request()
            .map_err(|e| JanusError::Connection(format!("bad URL: {e}")))?;
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "janus-protocol".parse().expect("valid header"),
        );
        let (ws, _) = tungstenite::client::client(request, stream)
            .map_err(|e| JanusError::Connection(format!("WebSocket handshake with Janus failed: {e}")))?;
        ws.get_ref().tcp().set_read_timeout(Some(READ_SLICE)).ok();
        let mut client = JanusClient {
            ws,
            session: None,
            next_transaction: 1,
            queued: VecDeque::new(),
            last_sent: Instant::now(),
        };
        let reply = client.call(json!({"janus": "create"}), timeout)?;
        let id = reply["data"]["id"]
            .as_u64()
            .ok_or_else(|| JanusError::Connection("Janus created no session".into()))?;
        client.session = Some(id);
        Ok(client)
    }

    /// Attaches a handle to `plugin` (e.g. `janus.plugin.videoroom`).
    pub fn attach(&mut self, plugin: &str, timeout: Duration) -> Result<u64> {
        let reply = self.call(json!({"janus": "attach", "plugin": plugin}), timeout)?;
        reply["data"]["id"]
            .as_u64()
            .ok_or_else(|| JanusError::Connection("Janus attached no handle".into()))
    }

    /// Detaches a handle; its PeerConnection ends with it. Errors are of no interest.
    pub fn detach(&mut self, handle: u64) {
        let message = json!({"janus": "detach", "handle_id": handle});
        let _ = self.send(message);
    }

    /// Trickles one local ICE candidate to a handle, or the end of candidates when `None`.
    pub fn trickle(&mut self, handle: u64, candidate: Option<(u32, &str)>) -> Result<()> {
        let candidate = match candidate {
            Some((mline, candidate)) => json!({"sdpMLineIndex": mline, "candidate": candidate}),
            None => json!({"completed": true}),
        };
        let transaction = format!("n{}", self.next_transaction);
        self.next_transaction += 1;
        self.send(json!({
            "janus": "trickle", "handle_id": handle, "candidate": candidate, "transaction": transaction,
        }))
    }

    /// Sends a plugin request and waits for its answer: a synchronous `success` or, after an
    /// `ack`, the `event` with the same transaction.
    pub fn message(
        &mut self,
        handle: u64,
        body: Value,
        jsep: Option<Value>,
        timeout: Duration,
    ) -> Result<PluginReply> {
        let mut message = json!({"janus": "message", "handle_id": handle, "body": body});
        if let Some(jsep) = jsep {
            message["jsep"] = jsep;
        }
        let reply = self.call(message, timeout)?;
        let data = reply["plugindata"]["data"].clone();
        if let Some(code) = data.get("error_code").and_then(Value::as_i64) {
            return Err(JanusError::Refused {
                code,
                reason: data["error"].as_str().unwrap_or("refused").to_owned(),
            });
        }
        Ok(PluginReply {
            data,
            jsep: reply.get("jsep").cloned(),
        })
    }

    /// The next asynchronous message (plugin events, `webrtcup`, `hangup`, `detached`…), waiting
    /// up to `timeout`; keeps the session alive meanwhile.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<Value>> {
        if let Some(event) = self.queued.pop_front() {
            return Ok(Some(event));
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(message) = self.read()? {
                return Ok(Some(message));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
        }
    }

    /// Sends `message` with a new transaction and returns the final answer to it.
    fn call(&mut self, mut message: Value, timeout: Duration) -> Result<Value> {
        let transaction = format!("t{}", self.next_transaction);
        self.next_transaction += 1;
        message["transaction"] = json!(transaction);
        let what = message["janus"].as_str().unwrap_or("request").to_owned();
        self.send(message)?;
        let deadline = Instant::now() + timeout;
        loop {
            if Instant::now() >= deadline {
                return Err(JanusError::Timeout(what));
            }
            let Some(reply) = self.read()? else { continue };
            if reply["transaction"].as_str() != Some(transaction.as_str()) {
                self.queued.push_back(reply);
                continue;
            }
            match reply["janus"].as_str() {
                Some("ack") => continue,
                Some("error") => {
                    return Err(JanusError::Refused {
                        code: reply["error"]["code"].as_i64().unwrap_or(0),
                        reason: reply["error"]["reason"].as_str().unwrap_or("error").to_owned(),
                    });
                }
                _ => return Ok(reply),
            }
        }
    }

    fn send(&mut self, mut message: Value) -> Result<()> {
        if let Some(session) = self.session {
            message["session_id"] = json!(session);
        }
        self.ws
            .send(Message::text(message.to_string()))
            .map_err(|e| JanusError::Connection(format!("connection to Janus lost: {e}")))?;
        self.last_sent = Instant::now();
        Ok(())
    }

    /// One message, or `None` after a short wait; sends a keepalive when one is due.
    fn read(&mut self) -> Result<Option<Value>> {
        if self.session.is_some() && self.last_sent.elapsed() >= KEEPALIVE_EVERY {
            let transaction = format!("n{}", self.next_transaction);
            self.next_transaction += 1;
            self.send(json!({"janus": "keepalive", "transaction": transaction}))?;
        }
        match self.ws.read() {
            Ok(Message::Text(text)) => {
                let value: Value = serde_json::from_str(text.as_str()).map_err(|e| {
                    JanusError::Connection(format!("Janus sent something that is not JSON: {e}"))
                })?;
                // Acks of keepalives and trickles carry nothing.
                if value["janus"] == "ack"
                    && value["transaction"].as_str().is_some_and(|t| t.starts_with('n'))
                {
                    return Ok(None);
                }
                Ok(Some(value))
            }
            Ok(Message::Close(_)) => Err(JanusError::Connection("Janus closed the connection".into())),
            Ok(_) => Ok(None),
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(JanusError::Connection(format!("connection to Janus lost: {e}"))),
        }
    }

    /// Ends the session politely; the connection closes with the client.
    pub fn close(mut self) {
        let transaction = format!("t{}", self.next_transaction);
        let _ = self.send(json!({"janus": "destroy", "transaction": transaction}));
        let _ = self.ws.close(None);
        let _ = self.ws.flush();
    }
}
