//! What is owed: a pure function of the terms and the receipts a [`crate::receipt::Book`]
//! took, one per payment model (NuNet's `fixed_rental`, `pay_per_allocation`,
//! `pay_per_deployment`, `pay_per_resource_utilization`, `pay_per_time_utilization`,
//! `periodic`). Both sides run the same function over the same receipts, so their
//! ledgers agree; fractions of a micro-unit are rounded down, once, on the totals.

use std::collections::BTreeSet;

use crate::receipt::{Receipt, Usage};
use crate::{Amount, Model, Terms};

/// Seconds per hour.
const HOUR: u128 = 3_600;

/// What is owed under `terms` for `receipts` (each counted once: pass a book's), capped
/// at the contract's `max_total`.
pub fn owed<'a>(terms: &Terms, receipts: impl IntoIterator<Item = &'a Receipt>) -> Amount {
    let mut used = Usage::default();
    let mut allocations = BTreeSet::new();
    let mut deployments = BTreeSet::new();
    for receipt in receipts {
        let s = receipt.statement();
        used = used.plus(&s.usage);
        if !s.usage.is_zero() {
            allocations.insert((s.deployment.as_str(), s.allocation.as_str()));
            deployments.insert(s.deployment.as_str());
        }
    }
    let micros: u128 = match terms.model {
        Model::FixedRental { amount } => {
            if used.is_zero() {
                0
            } else {
                u128::from(amount)
            }
        }
        Model::PayPerAllocation { per_allocation } => {
            allocations.len() as u128 * u128::from(per_allocation)
        }
        Model::PayPerDeployment { per_deployment } => {
            deployments.len() as u128 * u128::from(per_deployment)
        }
        Model::PayPerResourceUtilization { per_core_hour, per_gib_hour, per_gpu_hour } => {
            // Over a common denominator, so that only the total is rounded.
            let cpu = u128::from(used.cpu_millicore_secs) * u128::from(per_core_hour) * 1024;
            let ram = u128::from(used.ram_mib_secs) * u128::from(per_gib_hour) * 1000;
            let gpu = u128::from(used.gpu_secs) * u128::from(per_gpu_hour) * 1000 * 1024;
            (cpu + ram + gpu) / (HOUR * 1000 * 1024)
        }
        Model::PayPerTimeUtilization { per_hour } => {
            u128::from(used.wall_secs) * u128::from(per_hour) / HOUR
        }
        Model::Periodic { per_period, period_secs } => {
            let periods = u128::from(used.wall_secs).div_ceil(u128::from(period_secs.max(1)));
            periods * u128::from(per_period)
        }
    };
    let micros = u64::try_from(micros).unwrap_or(u64::MAX);
    let capped = terms.limits.max_total.map_or(micros, |max| micros.min(max));
    terms.amount(capped)
}

#[cfg(test)]
mod tests {
    use dms_crypto::{KeyPair, KeyType};
    use proptest::prelude::*;

    use super::*;
    use crate::Limits;
    use crate::receipt::{Book, Statement};

    fn models() -> impl Strategy<Value = Model> {
        let price = 0u64..5_000_000;
        prop_oneof![
            price.clone().prop_map(|amount| Model::FixedRental { amount }),
            price.clone().prop_map(|per_allocation| Model::PayPerAllocation { per_allocation }),
            price.clone().prop_map(|per_deployment| Model::PayPerDeployment { per_deployment }),
            (price.clone(), price.clone(), price.clone()).prop_map(|(c, g, u)| {
                Model::PayPerResourceUtilization {
                    per_core_hour: c,
                    per_gib_hour: g,
                    per_gpu_hour: u,
                }
            }),
            price.clone().prop_map(|per_hour| Model::PayPerTimeUtilization { per_hour }),
            (price, 1u64..10_000)
                .prop_map(|(per_period, period_secs)| Model::Periodic { per_period, period_secs }),
        ]
    }

    fn usages() -> impl Strategy<Value = Usage> {
        (0u64..100_000, 0u64..10_000_000, 0u64..100_000_000, 0u64..10_000).prop_map(
            |(wall_secs, cpu_millicore_secs, ram_mib_secs, gpu_secs)| Usage {
                wall_secs,
                cpu_millicore_secs,
                ram_mib_secs,
                gpu_secs,
            },
        )
    }

    fn terms(model: Model, max_total: Option<u64>) -> Terms {
        let key = || KeyPair::generate(KeyType::Ed25519).did();
        Terms {
            v: 1,
            requester: key(),
            provider: key(),
            model,
            currency: "USDT".into(),
            limits: Limits { max_total, max_allocations: None },
            valid_from: 0,
            valid_until: u64::MAX,
            host: None,
            nonce: 0,
        }
    }

    /// One allocation's receipts, numbered in order, over consecutive seconds.
    fn receipts(provider: &KeyPair, allocation: &str, usages: &[Usage]) -> Vec<Receipt> {
        usages
            .iter()
            .enumerate()
            .map(|(i, usage)| {
                let seq = i as u64;
                let statement = Statement {
                    contract: "c".into(),
                    deployment: "d".into(),
                    allocation: allocation.into(),
                    provider: provider.did(),
                    seq,
                    from_ms: seq * 1_000,
                    to_ms: (seq + 1) * 1_000,
                    usage: *usage,
                    exit: None,
                };
                Receipt::sign(statement, provider).expect("signed")
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Nothing used, nothing owed.
        #[test]
        fn zero_for_zero_usage(model in models(), n in 0usize..4) {
            let provider = KeyPair::generate(KeyType::Ed25519);
            let none = receipts(&provider, "a", &vec![Usage::default(); n]);
            prop_assert_eq!(owed(&terms(model, None), &none).micros, 0);
        }

        /// More receipts (more time, more usage) never owe less, and the cap holds.
        #[test]
        fn monotonic_in_time_and_usage(
            model in models(),
            usages in proptest::collection::vec(usages(), 1..6),
            cap in proptest::option::of(0u64..u64::MAX),
        ) {
            let provider = KeyPair::generate(KeyType::Ed25519);
            let all = receipts(&provider, "a", &usages);
            let t = terms(model, cap);
            let mut last = 0;
            for k in 0..=all.len() {
                let now = owed(&t, &all[..k]).micros;
                prop_assert!(now >= last, "{} after {} receipts, {} before", now, k, last);
                if let Some(cap) = cap {
                    prop_assert!(now <= cap);
                }
                last = now;
            }
        }

        /// Receipts offered again (lost answers, retries) are counted once.
        #[test]
        fn no_double_counting_across_repeats(
            model in models(),
            usages in proptest::collection::vec(usages(), 1..6),
            repeats in proptest::collection::vec(0usize..6, 0..10),
        ) {
            let provider = KeyPair::generate(KeyType::Ed25519);
            let all = receipts(&provider, "a", &usages);
            let mut book = Book::default();
            for receipt in &all {
                book.take(receipt.clone(), &provider.did()).expect("taken");
            }
            for i in repeats {
                let again = all[i % all.len()].clone();
                prop_assert_eq!(book.take(again, &provider.did()), Ok(crate::receipt::Taken::Repeat));
            }
            let t = terms(model, None);
            prop_assert_eq!(owed(&t, book.receipts()), owed(&t, &all));
        }
    }

    #[test]
    fn each_model_owes_what_its_formula_says() {
        let provider = KeyPair::generate(KeyType::Ed25519);
        let hour = Usage {
            wall_secs: 3_600,
            cpu_millicore_secs: 2_000 * 3_600,
            ram_mib_secs: 512 * 3_600,
            gpu_secs: 3_600,
        };
        let mut all = receipts(&provider, "a", &[hour, hour]);
        all.extend(receipts(&provider, "b", &[hour]));
        let owe = |model| owed(&terms(model, None), &all).micros;
        assert_eq!(owe(Model::FixedRental { amount: 9 }), 9);
        assert_eq!(owe(Model::PayPerAllocation { per_allocation: 10 }), 20);
        assert_eq!(owe(Model::PayPerDeployment { per_deployment: 10 }), 10);
        // 3 h × (2 cores × 1000 + 0.5 GiB × 100 + 1 GPU × 10_000).
        let resources = Model::PayPerResourceUtilization {
            per_core_hour: 1_000,
            per_gib_hour: 100,
            per_gpu_hour: 10_000,
        };
        assert_eq!(owe(resources), 3 * (2_000 + 50 + 10_000));
        assert_eq!(owe(Model::PayPerTimeUtilization { per_hour: 1_000_000 }), 3_000_000);
        assert_eq!(owe(Model::Periodic { per_period: 5, period_secs: 7_000 }), 10);
        let capped = owed(
            &terms(Model::PayPerTimeUtilization { per_hour: 1_000_000 }, Some(2_500_000)),
            &all,
        );
        assert_eq!(capped, Amount::micros(2_500_000, "USDT"));
    }
}
