//! The Janus test bed: Janus in a network namespace of its own (scripts/janus.sh) and rooms made
//! through its API.

use egress::source::janus::JanusClient;
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

/// Namespace numbers handed to the tests of this process.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// Held for reading by every test bed, for writing by tests whose WebRTC peers both run on the
/// host (WHEP): their ICE may pick a pair on a bed's veth address, and a bed that goes away
/// under them (its test ended) takes that path with it, freezing the media.
static NAMESPACES: RwLock<()> = RwLock::new(());

/// Keeps test beds from coming or going while held.
pub fn no_test_beds() -> RwLockWriteGuard<'static, ()> {
    NAMESPACES.write().unwrap_or_else(|p| p.into_inner())
}

pub struct JanusBed {
    n: u32,
    dir: PathBuf,
    pub url: String,
    /// Released after the namespace is gone (fields drop after `drop`).
    _namespaces: RwLockReadGuard<'static, ()>,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/janus.sh")
}

impl JanusBed {
    pub fn start() -> JanusBed {
        let namespaces = NAMESPACES.read().unwrap_or_else(|p| p.into_inner());
        let n = 20 + NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("egress-janus-{n}-{}", std::process::id()));
        let url = Self::up(n, &dir);
        JanusBed {
            n,
            dir,
            url,
            _namespaces: namespaces,
        }
    }

    fn up(n: u32, dir: &std::path::Path) -> String {
        let output = Command::new("bash")
            .arg(script())
            .args(["up", &n.to_string()])
            .arg(dir)
            .output()
            .expect("scripts/janus.sh runs");
        assert!(
            output.status.success(),
            "Janus did not start: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    /// Kills Janus (its rooms go with it).
    pub fn kill(&self) {
        let status = Command::new("bash")
            .arg(script())
            .arg("kill")
            .arg(&self.dir)
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Starts Janus again after `kill`, in the same namespace.
    pub fn restart(&self) {
        let url = Self::up(self.n, &self.dir);
        assert_eq!(url, self.url);
    }

    /// Creates a VideoRoom room, with a PIN when given.
    pub fn create_room(&self, room: u64, pin: Option<&str>) {
        let mut client = JanusClient::connect(&self.url, Duration::from_secs(3)).expect("Janus answers");
        let handle = client
            .attach("janus.plugin.videoroom", Duration::from_secs(3))
            .unwrap();
        let mut body = json!({
            "request": "create", "room": room, "publishers": 16, "bitrate": 512000,
            "fir_freq": 10, "audiocodec": "opus", "videocodec": "vp8,h264,vp9",
        });
        if let Some(pin) = pin {
            body["pin"] = json!(pin);
        }
        client
            .message(handle, body, None, Duration::from_secs(3))
            .expect("the room is created");
        client.close();
    }
}

impl Drop for JanusBed {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .args(["down", &self.n.to_string()])
            .arg(&self.dir)
            .status();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
