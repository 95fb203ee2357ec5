//! `dms events` (the node's event journal, searched and followed) and `dms log-level`.

use std::time::Duration;

use anyhow::{Context as _, bail};
use dms_actor::envelope::now_ms;
use dms_protocol::telemetry::{Event, EventQuery, EventSink, ListEvents, LoggerConfig};
use dms_types::event::kind;

use super::Ctx;
use super::actor::{Caller, request, timeout};
use crate::cli::{EventsArgs, LogLevelArgs};

/// How often `--follow` asks for new events.
const POLL: Duration = Duration::from_secs(1);
/// Most events one question returns.
const MOST: usize = 1000;

/// `dms events [--deployment ID] [--kind K] [--since 10m] [-n N] [-f] [--json]`.
pub async fn events(ctx: &Ctx, args: EventsArgs) -> anyhow::Result<()> {
    if let Some(k) = &args.kind
        && !kind::ALL.contains(&k.as_str())
    {
        bail!("--kind {k:?} is not an event kind; the kinds are {}", kind::ALL.join(", "));
    }
    if args.limit == 0 || args.limit > MOST {
        bail!("--limit {} is out of range; ask for 1 to {MOST} events", args.limit);
    }
    let since_ms = match &args.since {
        Some(text) => {
            let ago = dms_types::units::parse_duration(text)
                .with_context(|| format!("--since {text:?}: expected a duration such as 10m"))?;
            Some(now_ms().saturating_sub(u64::try_from(ago.as_millis()).unwrap_or(u64::MAX)))
        }
        None => None,
    };
    let mut query = EventQuery {
        deployment: args.deployment.clone(),
        kind: args.kind.clone(),
        since_ms,
        after: None,
        limit: args.limit,
    };
    let caller = Caller::open(ctx, &args.target).await?;
    let wait = timeout(&args.target.timeout)?;
    let started_ms = now_ms();
    let found = caller.request(&ListEvents { query: query.clone() }, wait).await?;
    print(&found, args.json)?;
    if !args.follow {
        if found.is_empty() && !args.json {
            eprintln!("No events recorded{}.", described(&args));
        }
        return Ok(());
    }
    // From here on: everything after the last event shown (or after now).
    query.limit = MOST;
    query.since_ms = Some(since_ms.unwrap_or(0).max(if found.is_empty() { started_ms } else { 0 }));
    query.after = found.last().map(|e| e.id.clone());
    loop {
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        // Without a cursor yet: the events since the follow began, oldest first.
        let next = caller.request(&ListEvents { query: query.clone() }, wait).await?;
        print(&next, args.json)?;
        if let Some(last) = next.last() {
            query.after = Some(last.id.clone());
        }
    }
}

fn described(args: &EventsArgs) -> String {
    let mut parts = Vec::new();
    if let Some(d) = &args.deployment {
        parts.push(format!("for deployment {d}"));
    }
    if let Some(k) = &args.kind {
        parts.push(format!("of kind {k}"));
    }
    if let Some(s) = &args.since {
        parts.push(format!("in the last {s}"));
    }
    if parts.is_empty() { String::new() } else { format!(" {}", parts.join(" ")) }
}

fn print(events: &[Event], json: bool) -> anyhow::Result<()> {
    for event in events {
        if json {
            println!("{}", serde_json::to_string(event)?);
        } else {
            println!("{}", line(event));
        }
    }
    Ok(())
}

/// One event for people: time, level when not info, kind, what it concerns, message.
fn line(e: &Event) -> String {
    let level = match e.level.as_str() {
        "info" | "" => String::new(),
        level => format!("{} ", level.to_uppercase()),
    };
    let subject = match (&e.deployment, &e.allocation, &e.peer) {
        (Some(d), Some(a), _) if a.starts_with(&format!("{d}.")) => a.clone(),
        (Some(d), Some(a), _) => format!("{d}.{a}"),
        (Some(d), None, _) => d.clone(),
        (None, _, Some(p)) => p.clone(),
        _ => "-".into(),
    };
    format!("{}  {level}{:<10}  {subject}  {}", e.timestamp, e.kind, e.message)
}

/// `dms log-level [FILTER]`.
pub async fn log_level(ctx: &Ctx, args: LogLevelArgs) -> anyhow::Result<()> {
    let changing = args.level.is_some();
    let shipping = args.elasticsearch_url.is_some();
    let mut state = request(ctx, &args.target, &LoggerConfig { level: args.level }).await?;
    if let Some(url) = args.elasticsearch_url {
        state = request(ctx, &args.target, &EventSink { elasticsearch_url: url }).await?;
    }
    if changing {
        println!("Log level is now {}.", state.level);
    } else if !shipping {
        println!("{}", state.level);
    }
    if shipping {
        match &state.elasticsearch_url {
            Some(url) => println!("Events are now shipped to {url}."),
            None => println!("Events are no longer shipped to Elasticsearch."),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_names_the_allocation_or_peer() {
        let event = Event {
            timestamp: "2026-11-30T16:00:00.000Z".into(),
            kind: "allocation".into(),
            level: "warn".into(),
            deployment: Some("d1".into()),
            allocation: Some("d1.web".into()),
            message: "Allocation d1.web failed: exit 1".into(),
            ..Event::default()
        };
        assert_eq!(
            line(&event),
            "2026-11-30T16:00:00.000Z  WARN allocation  d1.web  Allocation d1.web failed: exit 1"
        );
        let peer = Event { kind: "peer".into(), peer: Some("12D3".into()), ..Event::default() };
        assert!(line(&peer).contains("peer        12D3"), "{}", line(&peer));
    }
}
