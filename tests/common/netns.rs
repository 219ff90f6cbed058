//! A host of the test's own that drops every packet sent to it: a network namespace behind a
//! veth pair, whose address the host side reaches through a neighbour entry with a MAC address
//! nobody has. Connections to it neither succeed nor get refused; they time out, as with a
//! firewall that drops. `scripts/test.sh` removes namespaces a killed run left behind.

use std::process::Command;

pub struct BlackHole {
    namespace: String,
    /// The address that swallows packets, e.g. `10.78.7.1`.
    pub address: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl BlackHole {
    pub fn create() -> BlackHole {
        let n = std::process::id() % 200 + 1;
        let namespace = format!("egress-drop-{n}");
        let (host, inside) = (format!("egd{n}"), format!("egx{n}"));
        let _ = Command::new("ip").args(["netns", "del", &namespace]).output();
        ip(&["netns", "add", &namespace]);
        ip(&["link", "add", &host, "type", "veth", "peer", "name", &inside]);
        ip(&["link", "set", &inside, "netns", &namespace]);
        ip(&["addr", "add", &format!("10.78.{n}.2/24"), "dev", &host]);
        ip(&["link", "set", &host, "up"]);
        ip(&[
            "-n",
            &namespace,
            "addr",
            "add",
            &format!("10.78.{n}.1/24"),
            "dev",
            &inside,
        ]);
        ip(&["-n", &namespace, "link", "set", &inside, "up"]);
        let address = format!("10.78.{n}.1");
        // Frames for the namespace's address go out with a MAC its interface does not have,
        // so it drops them without an answer.
        ip(&[
            "neigh",
            "replace",
            &address,
            "lladdr",
            "02:00:00:00:de:ad",
            "dev",
            &host,
            "nud",
            "permanent",
        ]);
        BlackHole { namespace, address }
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        // The veth pair goes with the namespace.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.namespace])
            .output();
    }
}
