//! nginx with the RTMP module on a loopback port: application `live` records every stream it
//! receives; application `locked` refuses every stream key (its `on_publish` check, served by
//! the same nginx over HTTP, answers 403).

use super::{Service, free_port, wait_for_port};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

pub struct RtmpServer {
    dir: PathBuf,
    pub port: u16,
    process: Option<Service>,
}

impl RtmpServer {
    pub fn new(dir: PathBuf) -> RtmpServer {
        std::fs::create_dir_all(dir.join("received")).unwrap();
        let port = free_port();
        let auth_port = free_port();
        let config = format!(
            "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\n\
             daemon off;\nmaster_process off;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             http {{ access_log off; client_body_temp_path {dir}/body;\n\
               server {{ listen 127.0.0.1:{auth_port}; location /refuse {{ return 403; }} }} }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port};\n\
               application live {{ live on; record all; record_unique on; record_path {dir}/received; }}\n\
               application locked {{ live on; on_publish http://127.0.0.1:{auth_port}/refuse; }} }} }}\n",
            dir = dir.display()
        );
        std::fs::write(dir.join("nginx.conf"), config).unwrap();
        let mut server = RtmpServer {
            dir,
            port,
            process: None,
        };
        server.start();
        server
    }

    pub fn start(&mut self) {
        let mut command = Command::new("nginx");
        command
            .arg("-c")
            .arg(self.dir.join("nginx.conf"))
            .arg("-p")
            .arg(&self.dir)
            .arg("-e")
            .arg(self.dir.join("error.log"));
        self.process = Some(Service::start("nginx", &mut command));
        wait_for_port(self.port, Duration::from_secs(10));
    }

    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop();
        }
    }

    /// The FLV files received for a stream key, in order.
    pub fn received(&self, key: &str) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.join("received"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&format!("{key}-"))
            })
            .collect();
        files.sort();
        files
    }

    /// What nginx logged (publishes refused by `on_publish` say so here).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}
