//! Publishing in the life cycle: on request while the workload runs (it runs on), and
//! when a task ends (its end is recorded once its outputs are out). One publish is in
//! flight at a time (`Hosted::publishing`): a task that ends while one asked for runs
//! is published again, in full, once that one is done.

use dms_protocol::storage::{self, Published};

use super::{Effect, change, end, exited};
use crate::hosted::{Hosted, Publishing};
use dms_protocol::AllocationState as S;

/// Publishing was asked for while the workload runs.
pub(super) fn asked(hosted: &mut Hosted) -> Vec<Effect> {
    if hosted.publishing.is_some() || hosted.exit.is_some() {
        return Vec::new();
    }
    hosted.publishing = Some(Publishing::OnRequest);
    change(hosted, |s| s.message = Some(storage::PUBLISHING.into()));
    vec![Effect::Persist { durable: false }, Effect::Tell, Effect::Publish]
}

/// A task with outputs ended (and is not restarted): its exit is held until they are
/// published.
pub(super) fn ended(hosted: &mut Hosted, exit: (i64, String, String)) -> Vec<Effect> {
    let code = exit.0;
    hosted.exit = Some(exit);
    change(hosted, |s| s.message = Some(format!("exited with code {code}; publishing outputs")));
    if hosted.publishing.is_some() {
        // One asked for is in flight: the final one follows it.
        return vec![Effect::Persist { durable: true }, Effect::Tell];
    }
    hosted.publishing = Some(Publishing::Final);
    vec![Effect::Persist { durable: true }, Effect::Tell, Effect::Publish]
}

/// A publish finished.
pub(super) fn done(
    hosted: &mut Hosted,
    result: Result<Vec<Published>, String>,
    now_ms: u64,
) -> Vec<Effect> {
    match hosted.publishing.take() {
        None => Vec::new(),
        Some(Publishing::OnRequest) if hosted.exit.is_some() => {
            // The task ended meanwhile: what counts is a publish of its final files.
            hosted.publishing = Some(Publishing::Final);
            vec![Effect::Publish]
        }
        Some(Publishing::OnRequest) => {
            let message = match &result {
                Ok(published) => format!("{} {} object(s)", storage::PUBLISHED, published.len()),
                Err(error) => format!("could not publish its outputs: {error}"),
            };
            change(hosted, |s| {
                if let Ok(published) = result {
                    s.outputs = published;
                }
                s.message = Some(message);
            });
            vec![Effect::Persist { durable: true }, Effect::Tell]
        }
        Some(Publishing::Final) => {
            let Some((code, reason, output)) = hosted.exit.take() else { return Vec::new() };
            let error = match result {
                Ok(published) => {
                    change(hosted, |s| s.outputs = published);
                    return exited(hosted, code, &reason, output, now_ms);
                }
                Err(error) => error,
            };
            // It ends as it would have (the policy did not restart it), failed.
            let effects = exited(hosted, code, &reason, output, now_ms);
            let note = format!("its outputs could not be published: {error}");
            change(hosted, |s| {
                s.state = S::Failed;
                s.message = Some(match s.message.take().filter(|m| !m.is_empty()) {
                    Some(before) => format!("{before}; {note}"),
                    None => note,
                });
            });
            if effects.contains(&Effect::Ended) {
                effects
            } else {
                end(hosted, S::Failed, hosted.status.message.clone().unwrap_or_default(), now_ms)
            }
        }
    }
}
