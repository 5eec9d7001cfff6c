//! The built `arroba` binary as a user runs it: a child process killed when the test ends, a
//! free port, waiting for a server to answer, and `arroba serve` on the embedded store.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A child process killed when the test ends, whatever happens; with `group`, its whole
/// process group (`make` starts a shell that starts the server).
pub struct Running {
    pub child: Child,
    pub group: bool,
}

impl Running {
    /// Stops the process as a service manager does (SIGTERM) and waits for it to exit.
    pub fn terminate(&mut self) {
        let stop = Command::new("kill")
            .args(["-s", "TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(stop.success());
        self.child.wait().unwrap();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.group {
            // `--` first: procps-ng's kill reads a bare `-<pgid>` as "every process" (-1).
            let _ = Command::new("kill")
                .args(["-s", "TERM", "--", &format!("-{}", self.child.id())])
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `url` answers, or panics with the server's output.
pub async fn wait_for(url: &str, log: &Path) {
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if client.get(url).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{url} never answered; server output:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// POSTs `body` as JSON (with a bearer `token` if given) and returns the JSON answer, which must
/// be a success.
pub async fn post_json(
    client: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: serde_json::Value,
) -> serde_json::Value {
    let mut request = client.post(url).json(&body);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    assert!(status.is_success(), "{status}: {body}");
    body
}

/// `arroba serve` in dev mode on the embedded store in `data`, on `port`, with `env` added;
/// stdout to `<data>.log`, JSON log lines to `<data>.json`. Returns once it answers.
pub async fn serve(data: &Path, port: u16, env: &[(&str, &str)]) -> Running {
    let log = data.with_extension("log");
    let child = Command::new(env!("CARGO_BIN_EXE_arroba"))
        .arg("serve")
        .env_clear()
        .env("PDS_DEV_MODE", "true")
        .env("PDS_PORT", port.to_string())
        .env("PDS_DATA_DIRECTORY", data)
        .env("ARROBA_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::from(
            std::fs::File::create(data.with_extension("json")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let running = Running {
        child,
        group: false,
    };
    wait_for(&format!("http://127.0.0.1:{port}/xrpc/_health"), &log).await;
    running
}

/// Runs `command` with its stderr on a pseudo-terminal (as a person at a terminal sees it);
/// returns its exit status and everything it drew there.
pub fn on_terminal(mut command: Command) -> (std::process::ExitStatus, String) {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    use std::io::Read;
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.to_str().unwrap())
        .unwrap();
    let mut reader = std::fs::File::from(master);
    let drawn = std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        // Once every holder of the terminal's other end has closed it, reads fail (EIO).
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&out).into_owned()
    });
    let mut child = command.stderr(slave).spawn().unwrap();
    let status = child.wait().unwrap();
    drop(command);
    (status, drawn.join().unwrap())
}
