//! Logs, exec and stats of Docker containers.

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::ContainerStatsResponse;
use bollard::query_parameters::{LogsOptions, StatsOptions};
use futures::StreamExt as _;
use tracing::debug;

use super::{BACKEND, backend_error};
use crate::error::{Error, Result};
use crate::execution::{
    EXEC_OUTPUT_LIMIT, ExecOutput, ExecutionId, LogOptions, LogStream, OutputStream, Stats,
};
use crate::logbuf::LineSplitter;

/// Streams a container's logs into a bounded channel from a background task. The task ends
/// when the engine ends the stream (the container exited, with `follow`) or when the reader
/// drops the [`LogStream`].
pub fn logs(docker: Docker, id: ExecutionId, options: LogOptions) -> LogStream {
    let (tx, stream) = LogStream::channel();
    let query = LogsOptions {
        follow: options.follow,
        stdout: options.stdout,
        stderr: options.stderr,
        tail: options.tail.map_or_else(|| "all".to_owned(), |n| n.to_string()),
        ..LogsOptions::default()
    };
    tokio::spawn(async move {
        let mut frames = docker.logs(&id.0, Some(query));
        let mut lines = LineSplitter::default();
        while let Some(frame) = frames.next().await {
            let (stream, bytes) = match frame {
                Ok(LogOutput::StdOut { message }) => (OutputStream::Stdout, message),
                Ok(LogOutput::StdErr { message }) => (OutputStream::Stderr, message),
                Ok(LogOutput::StdIn { .. } | LogOutput::Console { .. }) => continue,
                Err(e) => {
                    let _ = tx.send(Err(backend_error("logs", e))).await;
                    return;
                }
            };
            for line in lines.push(stream, &bytes) {
                if tx.send(Ok(line)).await.is_err() {
                    debug!(container = %id, "Log reader went away.");
                    return;
                }
            }
        }
        for line in lines.finish() {
            if tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
    });
    stream
}

/// Runs `command` in the container and collects its output (bounded).
pub async fn exec(docker: &Docker, id: &ExecutionId, command: Vec<String>) -> Result<ExecOutput> {
    if command.is_empty() {
        return Err(Error::InvalidSpec("exec needs a command".into()));
    }
    let created = docker
        .create_exec(
            &id.0,
            CreateExecOptions {
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                cmd: Some(command),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| backend_error("create exec", e))?;
    let mut out = ExecOutput {
        exit_code: -1,
        stdout: String::new(),
        stderr: String::new(),
        truncated: false,
    };
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    match docker.start_exec(&created.id, None).await.map_err(|e| backend_error("start exec", e))? {
        StartExecResults::Attached { mut output, .. } => {
            while let Some(frame) = output.next().await {
                let (buffer, bytes) = match frame.map_err(|e| backend_error("exec output", e))? {
                    LogOutput::StdOut { message } => (&mut stdout, message),
                    LogOutput::StdErr { message } => (&mut stderr, message),
                    _ => continue,
                };
                let room = EXEC_OUTPUT_LIMIT.saturating_sub(buffer.len());
                out.truncated |= bytes.len() > room;
                buffer.extend_from_slice(&bytes[..bytes.len().min(room)]);
            }
        }
        StartExecResults::Detached => {
            return Err(Error::Backend {
                backend: BACKEND,
                operation: "start exec",
                message: "the engine detached an attached exec".into(),
            });
        }
    }
    let inspected =
        docker.inspect_exec(&created.id).await.map_err(|e| backend_error("inspect exec", e))?;
    out.exit_code = inspected.exit_code.unwrap_or(-1);
    out.stdout = String::from_utf8_lossy(&stdout).into_owned();
    out.stderr = String::from_utf8_lossy(&stderr).into_owned();
    Ok(out)
}

/// One stats sample (the engine takes two readings about a second apart for the CPU rate).
pub async fn stats(docker: &Docker, id: &ExecutionId) -> Result<Stats> {
    let options = StatsOptions { stream: false, one_shot: false };
    let sample = docker
        .stats(&id.0, Some(options))
        .next()
        .await
        .ok_or_else(|| Error::Backend {
            backend: BACKEND,
            operation: "stats",
            message: "the engine returned no sample".into(),
        })?
        .map_err(|e| backend_error("stats", e))?;
    Ok(convert_stats(&sample))
}

/// Engine stats → [`Stats`], computed the way `docker stats` does.
pub(crate) fn convert_stats(s: &ContainerStatsResponse) -> Stats {
    let total = |c: &Option<bollard::models::ContainerCpuStats>| {
        c.as_ref().and_then(|c| c.cpu_usage.as_ref()).and_then(|u| u.total_usage)
    };
    let system = |c: &Option<bollard::models::ContainerCpuStats>| {
        c.as_ref().and_then(|c| c.system_cpu_usage)
    };
    let cpu_percent = match (
        total(&s.cpu_stats),
        total(&s.precpu_stats),
        system(&s.cpu_stats),
        system(&s.precpu_stats),
    ) {
        (Some(t), Some(pt), Some(sy), Some(psy)) if sy > psy && t >= pt => {
            let cpus = s
                .cpu_stats
                .as_ref()
                .and_then(|c| {
                    c.online_cpus.map(u64::from).or_else(|| {
                        c.cpu_usage
                            .as_ref()
                            .and_then(|u| u.percpu_usage.as_ref())
                            .map(|p| p.len() as u64)
                    })
                })
                .unwrap_or(1);
            Some((t - pt) as f64 / (sy - psy) as f64 * cpus as f64 * 100.0)
        }
        _ => None,
    };
    let memory = s.memory_stats.as_ref();
    let usage = memory.and_then(|m| m.usage).unwrap_or(0);
    let inactive = memory
        .and_then(|m| m.stats.as_ref())
        .and_then(|st| st.get("total_inactive_file").or_else(|| st.get("inactive_file")).copied())
        .unwrap_or(0);
    let (rx, tx) = s.networks.as_ref().map_or((0, 0), |nets| {
        nets.values().fold((0, 0), |(rx, tx), n| {
            (rx + n.rx_bytes.unwrap_or(0), tx + n.tx_bytes.unwrap_or(0))
        })
    });
    Stats {
        cpu_percent,
        cpu_time_ns: total(&s.cpu_stats),
        memory_bytes: usage.saturating_sub(inactive),
        memory_limit_bytes: memory.and_then(|m| m.limit),
        net_rx_bytes: rx,
        net_tx_bytes: tx,
        pids: s.pids_stats.as_ref().and_then(|p| p.current),
    }
}
