//! The supervisor tree's decisions under paused time: which allocations each strategy
//! restarts, budgets within their window, escalation to the parent and to the top, and
//! which status changes count as failures.

use std::time::Duration;

use dms_ensemble::model::{Strategy, Supervisor};
use dms_protocol::{AllocationState, AllocationStatus};
use tokio::time::Instant;

use super::*;

fn supervisor(strategy: Strategy, allocations: &[&str], max: u32) -> Supervisor {
    Supervisor {
        strategy,
        allocations: allocations.iter().map(|a| a.to_string()).collect(),
        children: Vec::new(),
        max_restarts: Some(max),
        window: Some(dms_ensemble::units::Duration::secs(10)),
    }
}

fn restart(strategy: Strategy, targets: &[&str]) -> Act {
    Act::Restart { strategy, targets: targets.iter().map(|t| t.to_string()).collect() }
}

#[tokio::test(start_paused = true)]
async fn each_strategy_restarts_its_own_set_of_children() {
    let now = Instant::now();
    for (strategy, expected) in [
        (Strategy::OneForOne, vec!["b"]),
        (Strategy::OneForAll, vec!["a", "b", "c"]),
        (Strategy::RestForOne, vec!["b", "c"]),
    ] {
        let root = supervisor(strategy, &["a", "b", "c"], 3);
        let decision = decide(&root, &mut Budgets::default(), "b", now).expect("supervised");
        assert_eq!(decision, Decision { spent: Vec::new(), act: restart(strategy, &expected) });
    }
}

#[tokio::test(start_paused = true)]
async fn an_unsupervised_allocation_has_no_decision() {
    let root = supervisor(Strategy::OneForAll, &["a"], 3);
    assert_eq!(decide(&root, &mut Budgets::default(), "other", Instant::now()), None);
}

#[tokio::test(start_paused = true)]
async fn a_budget_is_spent_within_its_window_and_refills_after_it() {
    let root = supervisor(Strategy::OneForOne, &["a"], 2);
    let mut budgets = Budgets::default();
    let start = Instant::now();
    for _ in 0..2 {
        let act = decide(&root, &mut budgets, "a", start).expect("supervised").act;
        assert_eq!(act, restart(Strategy::OneForOne, &["a"]));
    }
    let third = decide(&root, &mut budgets, "a", start + Duration::from_secs(9));
    assert!(
        matches!(third.expect("supervised").act, Act::Escalate(ref why) if why.contains("used up its 2 restarts")),
        "the third within 10 s escalates"
    );
    tokio::time::advance(Duration::from_secs(11)).await;
    let later = decide(&root, &mut budgets, "a", start + Duration::from_secs(11));
    assert_eq!(later.expect("supervised").act, restart(Strategy::OneForOne, &["a"]));
}

#[tokio::test(start_paused = true)]
async fn a_nested_supervisor_out_of_budget_escalates_to_its_parent_as_a_whole_subtree() {
    // root (rest_for_one): db, then child [web, api] (one_for_one, 1 restart), then cache.
    let mut root = supervisor(Strategy::RestForOne, &["db"], 5);
    root.children.push(supervisor(Strategy::OneForOne, &["web", "api"], 1));
    root.children.push(supervisor(Strategy::OneForOne, &["cache"], 5));
    let mut budgets = Budgets::default();
    let now = Instant::now();
    let first = decide(&root, &mut budgets, "api", now).expect("supervised");
    assert_eq!(first.act, restart(Strategy::OneForOne, &["api"]));
    // The child's budget is spent: the root restarts the child's subtree and what
    // comes after it (rest_for_one), and says the child escalated.
    let second = decide(&root, &mut budgets, "web", now).expect("supervised");
    assert_eq!(second.act, restart(Strategy::RestForOne, &["web", "api", "cache"]));
    assert_eq!(second.spent.len(), 1);
    assert!(second.spent[0].contains("one_for_one) used up its 1 restarts"), "{second:?}");
}

#[tokio::test(start_paused = true)]
async fn out_of_budget_everywhere_escalates_to_the_ensemble() {
    let mut root = supervisor(Strategy::OneForAll, &[], 0);
    root.children.push(supervisor(Strategy::OneForOne, &["a"], 0));
    let decision = decide(&root, &mut Budgets::default(), "a", Instant::now()).expect("supervised");
    assert_eq!(decision.spent.len(), 1);
    assert!(
        matches!(decision.act, Act::Escalate(ref why) if why.contains("one_for_all) used up its 0"))
    );
}

#[test]
fn failures_are_a_provider_restart_or_an_end_in_failure_not_a_restart_asked_for() {
    let running = AllocationStatus { state: AllocationState::Running, ..Default::default() };
    let restarted = AllocationStatus { restarts: 1, ..running.clone() };
    let failed = AllocationStatus { state: AllocationState::Failed, ..running.clone() };
    assert_eq!(Cause::of(&running, &restarted, None), Some(Cause::Restarted));
    assert_eq!(Cause::of(&running, &restarted, Some(1)), None, "the supervisor asked for it");
    assert_eq!(Cause::of(&running, &failed, None), Some(Cause::Failed));
    assert_eq!(Cause::of(&failed, &failed, None), None, "once");
    assert_eq!(Cause::of(&running, &running, None), None);
}
