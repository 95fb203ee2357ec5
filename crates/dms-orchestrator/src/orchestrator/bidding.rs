//! Bid rounds: the request goes out (broadcast, or straight to pinned peers), answers
//! are gathered until the [`BidWindow`] closes, and the reservations of bids not chosen
//! are released.

use std::collections::{BTreeMap, BTreeSet};

use dms_protocol::*;
use dms_telemetry::metrics;
use tokio::task::JoinSet;
use tracing::warn;

use super::policy::BidWindow;
use super::{Orchestrator, skipped, standby};
use crate::deployment::Deployment;
use crate::select;

/// What a bid round is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Round {
    /// Placing nodes: providers reserve what they bid, and the window is an event.
    Place,
    /// `dms deploy --plan`: nothing is reserved.
    Plan,
    /// Seeking a standby: providers reserve, and the window is no event (rounds that
    /// find nobody repeat, and say why once: see `standby`).
    Standby,
}

impl Orchestrator {
    /// A bid round for a plan: asks without reserving, until the window can close.
    pub(crate) async fn plan_bids(&self, record: &Deployment, asks: &[NodeAsk]) -> Vec<BidAnswer> {
        self.bids_excluding(record, asks, skipped(record), Round::Plan).await
    }

    /// Asks for bids and collects the answers until the window can close; peers in
    /// `exclude` are asked to refuse (without reserving: a peer running another node
    /// of this deployment must not be sent the revert that releases an unchosen bid,
    /// which would stop that node).
    pub(crate) async fn bids_excluding(
        &self,
        record: &Deployment,
        asks: &[NodeAsk],
        exclude: BTreeSet<String>,
        round: Round,
    ) -> Vec<BidAnswer> {
        let settings = &self.shared.settings;
        let dry_run = round == Round::Plan;
        let request = BidRequest {
            deployment: record.id.clone(),
            orchestrator: self.actor.handle().clone(),
            nodes: asks.to_vec(),
            exclude: exclude.into_iter().collect(),
            contracts: self.contract_texts(&record.ensemble),
            dry_run,
            reservation_ms: u64::try_from(settings.reservation.as_millis()).unwrap_or(u64::MAX),
            rtts: dry_run || record.ensemble.edges.iter().any(|e| e.max_latency.is_some()),
        };
        let mut answers = Vec::new();
        let pinned: BTreeSet<String> = asks.iter().filter_map(|a| a.pinned.clone()).collect();
        if asks.iter().all(|a| a.pinned.is_some()) {
            for (peer, answer) in self.ask_directly(pinned, &request).await {
                match answer {
                    Ok(answer) => answers.push(answer),
                    Err(error) => self.change(
                        None,
                        format!("pinned peer {} did not bid: {error}", select::short(&peer)),
                        |_| {},
                    ),
                }
            }
            return answers;
        }
        let mut request = request;
        if round != Round::Plan && settings.shortlist > 0 {
            let (asked, shortlisted) = self.shortlisted(record, &request, asks, round).await;
            if select::place(asks, &shortlisted, &skipped(record), &record.ensemble.edges).is_ok() {
                return shortlisted;
            }
            // The adverts ran out: ask everyone else; those asked keep their answers.
            request.exclude.extend(asked);
            answers = shortlisted;
        }
        let expected = (self.shared.connected)().await.len() + 1;
        let Ok(payload) = dms_protocol::encode(&request) else { return answers };
        let mut gathered = match self
            .actor
            .gather(DEPLOYMENT_TOPIC, REQUEST, payload, settings.bid_window, 4096)
            .await
        {
            Ok(gathered) => gathered,
            Err(error) => {
                self.change(None, format!("could not broadcast the bid request: {error}"), |_| {});
                return answers;
            }
        };
        let started = tokio::time::Instant::now();
        let mut window = BidWindow::open(started, settings, expected);
        let skip = skipped(record);
        while let Some((from, reply)) = gathered.next_until(window.closes_at()).await {
            match reply
                .map_err(|e| e.to_string())
                .and_then(|b| decode_response::<BidRequest>(&b).map_err(|e| e.to_string()))
            {
                Ok(mut answer) => {
                    answer.peer = from.peer.clone();
                    count_received(&answer);
                    answers.push(answer);
                }
                Err(error) => warn!(peer = %from.peer, %error, "A bid answer could not be read."),
            }
            let placeable = select::place(asks, &answers, &skip, &record.ensemble.edges).is_ok();
            if window.answered(tokio::time::Instant::now(), placeable) {
                break;
            }
        }
        if round == Round::Standby {
            return answers;
        }
        let bids: usize = answers.iter().map(|a| a.bids.len()).sum();
        self.change(
            None,
            format!(
                "bid window closed after {} ms: {} of {} peers answered, {bids} bids",
                started.elapsed().as_millis(),
                answers.len(),
                window.expected()
            ),
            |_| {},
        );
        answers
    }

    /// Asks the shortlisted providers (the best advertised, [`crate::directory`]) for
    /// bids, widening to the next ones while the answers do not place every node, at
    /// most [`WIDEN`] times, each round twice as wide as the one before (with the
    /// default shortlist of 1: one, two, then four providers per node). Returns every
    /// peer asked and their answers.
    async fn shortlisted(
        &self,
        record: &Deployment,
        request: &BidRequest,
        asks: &[NodeAsk],
        round: Round,
    ) -> (BTreeSet<String>, Vec<BidAnswer>) {
        let settings = &self.shared.settings;
        let skip = skipped(record);
        let mut asked: BTreeSet<String> = request.exclude.iter().cloned().collect();
        asked.extend(skip.iter().cloned());
        let mut answers = Vec::new();
        let started = tokio::time::Instant::now();
        let now = std::time::Instant::now();
        let advertised = self.shared.directory.len(now);
        for widening in 0..WIDEN {
            let directory = &self.shared.directory;
            let width = settings.shortlist.saturating_mul(1 << widening);
            let Some(peers) = directory.shortlist(asks, &asked, width, now) else {
                break;
            };
            asked.extend(peers.iter().cloned());
            for (peer, answer) in self.ask_directly(peers, request).await {
                match answer {
                    Ok(answer) => {
                        count_received(&answer);
                        answers.push(answer);
                    }
                    // Gone or unreachable: its advert is no use any more.
                    Err(_) => directory.forget(&peer),
                }
            }
            if select::place(asks, &answers, &skip, &record.ensemble.edges).is_ok() {
                break;
            }
        }
        let bids: usize = answers.iter().map(|a| a.bids.len()).sum();
        let asked_now = answers.len();
        if round != Round::Place || asked_now == 0 {
            return (asked, answers);
        }
        self.change(
            None,
            format!(
                "asked {asked_now} of {advertised} advertised providers in {} ms: {bids} bids",
                started.elapsed().as_millis()
            ),
            |_| {},
        );
        (asked, answers)
    }

    /// Sends `request` straight to each of `peers` at once (a bid window at most) and
    /// returns every answer, its `peer` filled in, or why there was none.
    async fn ask_directly(
        &self,
        peers: BTreeSet<String>,
        request: &BidRequest,
    ) -> Vec<(String, Result<BidAnswer, dms_actor::ActorError>)> {
        let timeout = self.shared.settings.bid_window;
        let mut calls = JoinSet::new();
        for peer in peers {
            let Some(to) = (self.shared.root_of)(&peer) else { continue };
            let (actor, request) = (self.actor.clone(), request.clone());
            calls.spawn(async move { (peer, call(&actor, &to, &request, timeout).await) });
        }
        let mut answers = Vec::new();
        while let Some(Ok((peer, answer))) = calls.join_next().await {
            let answer = answer.map(|mut a| {
                a.peer = peer.clone();
                a
            });
            answers.push((peer, answer));
        }
        answers
    }

    /// Releases the reservations of bids that were not chosen.
    pub(crate) async fn release(
        &self,
        answers: &[BidAnswer],
        chosen: &BTreeMap<String, select::Choice>,
    ) {
        for _ in chosen.values() {
            metrics::bid("orchestrator", metrics::bid::ACCEPTED, "", REASON_CODES);
        }
        // A provider's bids share one reservation: keep it whole when one of them won.
        // A whole revert also stops the deployment's allocations there and releases its
        // standby: never send it to a provider with a role in this deployment.
        let hosting = standby::involved(&self.snapshot());
        let mut calls = JoinSet::new();
        for answer in answers {
            let won = chosen.values().any(|c| c.peer == answer.peer);
            if won || hosting.contains(&answer.peer) {
                continue;
            }
            if answer.bids.iter().all(|b| b.reservation.is_empty()) {
                continue;
            }
            let Some(to) = (self.shared.root_of)(&answer.peer) else { continue };
            // Asked, not told: a revert releases everything this deployment holds on the
            // provider, so it must be done before a later round (a standby's, a
            // replacement's) may reserve there again. (With the default shortlist of one
            // there is seldom anything to release.)
            let revert = Revert { deployment: self.actor.handle().inbox.clone(), node: None };
            let actor = self.actor.clone();
            let timeout = self.shared.settings.call_timeout;
            calls.spawn(async move {
                let _ = call(&actor, &to, &revert, timeout).await;
            });
        }
        while calls.join_next().await.is_some() {}
    }
}

/// Most shortlists one bid round asks before it broadcasts.
const WIDEN: usize = 3;

/// Counts the bids and refusals of one answer (`dms_bids_total{side="orchestrator"}`).
fn count_received(answer: &BidAnswer) {
    for _ in &answer.bids {
        metrics::bid("orchestrator", metrics::bid::RECEIVED, "", REASON_CODES);
    }
    for refusal in &answer.refusals {
        let code = refusal.reasons.first().map_or("", |r| r.code.as_str());
        metrics::bid("orchestrator", metrics::bid::REFUSED, code, REASON_CODES);
    }
}
