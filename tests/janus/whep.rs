//! A WHEP endpoint for the tests: a small HTTP server whose every session is a GStreamer
//! webrtcbin sender (a colour and a tone) answering the viewer's offer. It records what it was
//! asked, so tests can check the DELETE at the end and the bearer token.

use super::publisher::{Publishing, gathered_local_description, sending_pipeline, wait_for_caps};
use gst::prelude::*;
use gstreamer as gst;
use gstreamer_sdp as gst_sdp;
use gstreamer_webrtc as gst_webrtc;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
pub struct Requests {
    /// `METHOD path` of every request, in order.
    pub seen: Vec<String>,
}

pub struct WhepServer {
    pub url: String,
    pub requests: Arc<Mutex<Requests>>,
}

impl WhepServer {
    /// Serves `what` to viewers presenting `token`, on a free loopback port.
    pub fn start(what: Publishing, token: &str) -> WhepServer {
        gst::init().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/whep/call", listener.local_addr().unwrap());
        let requests: Arc<Mutex<Requests>> = Arc::default();
        let seen = requests.clone();
        let token = token.to_owned();
        std::thread::spawn(move || {
            let mut sessions: Vec<gst::Pipeline> = Vec::new();
            for stream in listener.incoming().map_while(Result::ok) {
                if let Err(e) = serve(stream, &what, &token, &seen, &mut sessions) {
                    eprintln!("whep test server: {e}");
                }
            }
        });
        WhepServer { url, requests }
    }

    pub fn seen(&self) -> Vec<String> {
        self.requests.lock().unwrap().seen.clone()
    }
}

fn serve(
    mut stream: TcpStream,
    what: &Publishing,
    token: &str,
    seen: &Mutex<Requests>,
    sessions: &mut Vec<gst::Pipeline>,
) -> Result<(), String> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    let mut first = String::new();
    reader.read_line(&mut first).map_err(|e| e.to_string())?;
    let mut parts = first.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_owned(),
        parts.next().unwrap_or("").to_owned(),
    );
    let (mut length, mut authorization) = (0usize, String::new());
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).map_err(|e| e.to_string())?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().unwrap_or(0),
            "authorization" => authorization = value.trim().to_owned(),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).map_err(|e| e.to_string())?;
    seen.lock().unwrap().seen.push(format!("{method} {path}"));
    let reply = if authorization != format!("Bearer {token}") {
        "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n".to_owned()
    } else {
        match method.as_str() {
            "POST" => {
                let answer = answer(what, &String::from_utf8_lossy(&body), sessions)?;
                format!(
                    "HTTP/1.1 201 Created\r\nContent-Type: application/sdp\r\nLocation: /whep/session/{}\r\n\
                     Content-Length: {}\r\n\r\n{answer}",
                    sessions.len(),
                    answer.len()
                )
            }
            "DELETE" => {
                for pipeline in sessions.drain(..) {
                    let _ = pipeline.set_state(gst::State::Null);
                }
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_owned()
            }
            _ => "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n".to_owned(),
        }
    };
    stream.write_all(reply.as_bytes()).map_err(|e| e.to_string())
}

/// A new sender answering `offer`; the answer carries its candidates.
fn answer(what: &Publishing, offer: &str, sessions: &mut Vec<gst::Pipeline>) -> Result<String, String> {
    let (pipeline, webrtc) = sending_pipeline(what)?;
    wait_for_caps(&webrtc);
    let offer = gst_sdp::SDPMessage::parse_buffer(offer.as_bytes()).map_err(|e| e.to_string())?;
    let offer = gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Offer, offer);
    let promise = gst::Promise::new();
    webrtc.emit_by_name::<()>("set-remote-description", &[&offer, &promise]);
    promise.wait();
    let promise = gst::Promise::new();
    webrtc.emit_by_name::<()>("create-answer", &[&None::<gst::Structure>, &promise]);
    promise.wait();
    let answer = promise
        .get_reply()
        .and_then(|r| r.get::<gst_webrtc::WebRTCSessionDescription>("answer").ok())
        .ok_or("webrtcbin made no answer")?;
    let local = gathered_local_description(&webrtc, &answer)?;
    sessions.push(pipeline);
    Ok(local)
}
