//! A minimal QMP (QEMU Machine Protocol) client: JSON lines over the VM's control socket.
//!
//! QEMU serves one client at a time (`server=on,wait=off`); a client connects, reads the
//! greeting, leaves capability negotiation with `qmp_capabilities`, then sends commands
//! and reads their `return` or `error`, skipping asynchronous events.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

/// How long one exchange may take.
const EXCHANGE: Duration = Duration::from_secs(5);

/// A connected QMP session in command mode.
pub(crate) struct Qmp {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Qmp {
    /// Connects and negotiates capabilities.
    pub async fn connect(path: &Path) -> Result<Qmp, String> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", path.display()))?;
        let (read, writer) = stream.into_split();
        let mut qmp = Qmp { reader: BufReader::new(read), writer };
        let greeting = qmp.read().await?;
        if greeting.get("QMP").is_none() {
            return Err(format!("not a QMP greeting: {greeting}"));
        }
        qmp.execute("qmp_capabilities").await?;
        Ok(qmp)
    }

    /// Runs a command without arguments and returns its `return` value.
    pub async fn execute(&mut self, command: &str) -> Result<Value, String> {
        let mut line = json!({ "execute": command }).to_string();
        line.push('\n');
        let write = self.writer.write_all(line.as_bytes());
        tokio::time::timeout(EXCHANGE, write)
            .await
            .map_err(|_| format!("QMP {command}: the socket does not accept writes"))?
            .map_err(|e| format!("QMP {command}: {e}"))?;
        loop {
            let message = self.read().await?;
            if let Some(value) = message.get("return") {
                return Ok(value.clone());
            }
            if let Some(error) = message.get("error") {
                let why = error.get("desc").and_then(Value::as_str).unwrap_or("unknown error");
                return Err(format!("QMP {command}: {why}"));
            }
            // An event ({"event": ...}): not the answer.
        }
    }

    async fn read(&mut self) -> Result<Value, String> {
        let mut line = String::new();
        let n = tokio::time::timeout(EXCHANGE, self.reader.read_line(&mut line))
            .await
            .map_err(|_| format!("QEMU did not answer within {EXCHANGE:?}"))?
            .map_err(|e| format!("QMP read: {e}"))?;
        if n == 0 {
            return Err("QEMU closed its control socket".into());
        }
        serde_json::from_str(&line).map_err(|e| format!("QMP: bad message {line:?}: {e}"))
    }
}
