//! A server driven with raw JSON-RPC over its stdio, so that a test can `kill -9` it at any moment
//! (an MCP client library would own the child process).

use std::collections::HashMap;
use std::io::{BufRead as _, Write as _};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::BIN;

/// A server on raw JSON-RPC.
pub(crate) struct Raw {
    child: Child,
    stdin: ChildStdin,
    rx: Receiver<Value>,
    next_id: i64,
    /// The answer to `initialize`.
    pub(crate) initialized: Value,
    /// Everything the server writes to stderr, read as it comes (a full pipe would block it).
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Raw {
    pub(crate) fn start(env: &HashMap<String, String>) -> Self {
        let mut child = Command::new(BIN)
            .env_clear()
            .envs(env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
            text
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx
                    .send(serde_json::from_str(&line).unwrap_or(Value::Null))
                    .is_err()
                {
                    break;
                }
            }
        });
        let mut raw = Self {
            child,
            stdin,
            rx,
            next_id: 1,
            initialized: Value::Null,
            stderr: Some(stderr),
        };
        let id = raw.send("initialize", json!({"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"crash","version":"1"}}));
        raw.initialized = raw
            .wait(id, Duration::from_secs(30))
            .expect("initialize answered");
        writeln!(
            raw.stdin,
            "{}",
            json!({"jsonrpc":"2.0","method":"notifications/initialized"})
        )
        .unwrap();
        raw
    }

    pub(crate) fn send(&mut self, method: &str, params: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        writeln!(
            self.stdin,
            "{}",
            json!({"jsonrpc":"2.0","id":id,"method":method,"params":params})
        )
        .unwrap();
        self.stdin.flush().unwrap();
        id
    }

    pub(crate) fn tool(&mut self, name: &str, args: Value) -> i64 {
        self.send("tools/call", json!({"name":name,"arguments":args}))
    }

    /// The answer to `id`, if it comes within `limit`.
    pub(crate) fn wait(&mut self, id: i64, limit: Duration) -> Option<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(msg) if msg["id"] == id => return Some(msg),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    return None;
                }
            }
        }
    }

    /// Its exit status, if it exits on its own within `limit` (this end of stdin still open);
    /// else it is killed and `None`.
    pub(crate) fn exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        None
    }

    /// Everything the server wrote to stderr; once it has exited.
    pub(crate) fn stderr(&mut self) -> String {
        self.stderr
            .take()
            .map(|reader| reader.join().unwrap())
            .unwrap_or_default()
    }

    /// SIGKILL, then every answer the server had already written (a client would read those).
    pub(crate) fn kill(mut self) -> Vec<Value> {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let mut written = Vec::new();
        while let Ok(msg) = self.rx.recv_timeout(Duration::from_millis(500)) {
            written.push(msg);
        }
        written
    }
}
