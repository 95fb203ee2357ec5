//! What is owed: a pure function of the terms and the receipts a [`crate::receipt::Book`]
//! took — the contract's model's [`Processor`] (`crate::models`: NuNet's `fixed_rental`,
//! `pay_per_allocation`, `pay_per_deployment`, `pay_per_resource_utilization`,
//! `pay_per_time_utilization`, `periodic`) over a [`Tally`] of the receipts, capped at
//! the contract's `max_total`. Both sides run the same function over the same receipts,
//! so their ledgers agree; fractions of a micro-unit are rounded down, once, on the
//! totals.

use std::collections::BTreeSet;

pub use crate::models::{Processor, Used};
use crate::receipt::{Receipt, Usage};
use crate::{Amount, Contract, Error, Terms};

/// What is owed under `contract` for `receipts` (each counted once: pass a book's),
/// capped at the contract's `max_total`. A receipt of another contract or another
/// provider is refused, not counted.
pub fn owed<'a>(
    contract: &Contract,
    receipts: impl IntoIterator<Item = &'a Receipt>,
) -> Result<Amount, Error> {
    let mut tally = Tally::default();
    for receipt in receipts {
        tally.add(contract, receipt)?;
    }
    Ok(owed_by(contract, &tally))
}

/// What receipts add up to, kept as they are taken so that what is owed needs no scan
/// over every receipt: usage, and the allocations and deployments that used anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tally {
    /// Everything used.
    pub usage: Usage,
    /// `<deployment>/<allocation>` of every allocation that used anything.
    pub allocations: BTreeSet<String>,
    /// Every deployment that used anything.
    pub deployments: BTreeSet<String>,
}

impl Tally {
    /// Adds `receipt` (each once: a book's); one of another contract or provider is
    /// refused.
    pub fn add(&mut self, contract: &Contract, receipt: &Receipt) -> Result<(), Error> {
        let (id, terms) = (contract.id(), contract.terms());
        let s = receipt.statement();
        if s.contract != id || s.provider != terms.provider {
            return Err(Error::Malformed(format!(
                "receipt {} of allocation {} is under contract {} by {}, not {id} by {}",
                s.seq, s.allocation, s.contract, s.provider, terms.provider
            )));
        }
        self.usage = self.usage.plus(&s.usage);
        if !s.usage.is_zero() {
            self.allocations.insert(format!("{}/{}", s.deployment, s.allocation));
            self.deployments.insert(s.deployment.clone());
        }
        Ok(())
    }
}

/// What is owed under `contract` for what `tally` adds up (its model's [`Processor`]),
/// capped at `max_total`.
pub fn owed_by(contract: &Contract, tally: &Tally) -> Amount {
    let terms = contract.terms();
    let used = Used {
        usage: &tally.usage,
        allocations: tally.allocations.len(),
        deployments: tally.deployments.len(),
    };
    let micros = terms.model.processor().owed(&used);
    let micros = u64::try_from(micros).unwrap_or(u64::MAX);
    let capped = terms.limits.max_total.map_or(micros, |max| micros.min(max));
    terms.amount(capped)
}

/// What `terms` pay per hour, in micro-units, for an allocation holding `cpu_millicores`,
/// `ram_mib` and `gpus`: `None` for the models that do not pay by time (`fixed_rental`,
/// `pay_per_allocation`, `pay_per_deployment`). A provider compares it with its own
/// price before bidding under the contract.
pub fn hourly(terms: &Terms, cpu_millicores: u64, ram_mib: u64, gpus: u64) -> Option<u64> {
    let rate = terms.model.processor().hourly(cpu_millicores, ram_mib, gpus)?;
    Some(u64::try_from(rate).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use dms_crypto::{KeyPair, KeyType};
    use proptest::prelude::*;

    use super::*;
    use crate::models::*;
    use crate::receipt::{Book, Statement, Taken};
    use crate::{Limits, Model};

    /// Prices: everyday ones, and any at all (overflow must saturate, not wrap).
    fn price() -> impl Strategy<Value = u64> {
        prop_oneof![0u64..5_000_000, any::<u64>()]
    }

    fn models() -> impl Strategy<Value = Model> {
        prop_oneof![
            price().prop_map(|amount| Model::FixedRental(FixedRental { amount })),
            price().prop_map(|per_allocation| Model::PayPerAllocation(PayPerAllocation {
                per_allocation
            })),
            price().prop_map(|per_deployment| Model::PayPerDeployment(PayPerDeployment {
                per_deployment
            })),
            (price(), price(), price()).prop_map(|(c, g, u)| Model::PayPerResourceUtilization(
                PayPerResourceUtilization { per_core_hour: c, per_gib_hour: g, per_gpu_hour: u }
            )),
            price().prop_map(|per_hour| Model::PayPerTimeUtilization(PayPerTimeUtilization {
                per_hour
            })),
            (price(), 1u64..10_000).prop_map(|(per_period, period_secs)| Model::Periodic(
                Periodic { per_period, period_secs }
            )),
        ]
    }

    fn usages() -> impl Strategy<Value = Usage> {
        let amount = || prop_oneof![0u64..100_000_000, any::<u64>()];
        (0u64..1_000_000, amount(), amount(), amount()).prop_map(
            |(wall_secs, cpu_millicore_secs, ram_mib_secs, gpu_secs)| Usage {
                wall_secs,
                cpu_millicore_secs,
                ram_mib_secs,
                gpu_secs,
            },
        )
    }

    fn contract(provider: &KeyPair, model: Model, max_total: Option<u64>) -> Contract {
        Contract::new(Terms {
            v: 1,
            requester: KeyPair::generate(KeyType::Ed25519).did(),
            provider: provider.did(),
            model,
            currency: "USDT".into(),
            limits: Limits { max_total, max_allocations: None },
            valid_from: 0,
            valid_until: u64::MAX,
            host: None,
            nonce: 0,
        })
        .expect("valid terms")
    }

    /// One allocation's receipts, numbered in order, each interval as long as its time.
    fn receipts(
        c: &Contract,
        provider: &KeyPair,
        allocation: &str,
        usages: &[Usage],
    ) -> Vec<Receipt> {
        let mut from_ms = 0;
        usages
            .iter()
            .enumerate()
            .map(|(i, usage)| {
                let to_ms = from_ms + usage.wall_secs * 1_000;
                let statement = Statement {
                    contract: c.id(),
                    deployment: "d".into(),
                    allocation: allocation.into(),
                    provider: provider.did(),
                    seq: i as u64,
                    from_ms,
                    to_ms,
                    usage: *usage,
                    exit: None,
                };
                from_ms = to_ms;
                Receipt::sign(statement, provider).expect("signed")
            })
            .collect()
    }

    fn key() -> KeyPair {
        KeyPair::generate(KeyType::Ed25519)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Nothing used, nothing owed.
        #[test]
        fn zero_for_zero_usage(model in models(), n in 0usize..4) {
            let provider = key();
            let c = contract(&provider, model, None);
            let none = receipts(&c, &provider, "a", &vec![Usage::default(); n]);
            prop_assert_eq!(owed(&c, &none).expect("ours").micros, 0);
        }

        /// More receipts (more time, more usage) never owe less, and the cap holds.
        #[test]
        fn monotonic_in_time_and_usage(
            model in models(),
            usages in proptest::collection::vec(usages(), 1..6),
            cap in proptest::option::of(any::<u64>()),
        ) {
            let provider = key();
            let c = contract(&provider, model, cap);
            let all = receipts(&c, &provider, "a", &usages);
            let mut last = 0;
            for k in 0..=all.len() {
                let now = owed(&c, &all[..k]).expect("ours").micros;
                prop_assert!(now >= last, "{} after {} receipts, {} before", now, k, last);
                if let Some(cap) = cap {
                    prop_assert!(now <= cap);
                }
                last = now;
            }
        }

        /// Receipts offered again (lost answers, retries), or offered to another
        /// allocation's book, are counted once, in their own book.
        #[test]
        fn no_double_counting_across_repeats(
            model in models(),
            usages in proptest::collection::vec(usages(), 1..6),
            repeats in proptest::collection::vec(0usize..6, 0..10),
        ) {
            let provider = key();
            let c = contract(&provider, model, None);
            let all = receipts(&c, &provider, "a", &usages);
            let mut book = Book::new(&c.id(), "d", "a", provider.did());
            let mut elsewhere = Book::new(&c.id(), "d", "b", provider.did());
            for receipt in &all {
                prop_assert_eq!(book.take(receipt.clone()), Ok(Taken::New));
            }
            for i in repeats {
                let again = all[i % all.len()].clone();
                prop_assert_eq!(book.take(again.clone()), Ok(Taken::Repeat));
                prop_assert!(elsewhere.take(again).is_err());
            }
            prop_assert_eq!(owed(&c, book.receipts()), owed(&c, &all));
            prop_assert_eq!(owed(&c, elsewhere.receipts()).expect("empty").micros, 0);
        }
    }

    #[test]
    fn each_model_owes_what_its_formula_says() {
        let provider = key();
        let hour = Usage {
            wall_secs: 3_600,
            cpu_millicore_secs: 2_000 * 3_600,
            ram_mib_secs: 512 * 3_600,
            gpu_secs: 3_600,
        };
        let owe = |model, cap| {
            let c = contract(&provider, model, cap);
            let mut all = receipts(&c, &provider, "a", &[hour, hour]);
            all.extend(receipts(&c, &provider, "b", &[hour]));
            owed(&c, &all).expect("ours").micros
        };
        assert_eq!(owe(Model::FixedRental(FixedRental { amount: 9 }), None), 9);
        assert_eq!(owe(Model::PayPerAllocation(PayPerAllocation { per_allocation: 10 }), None), 20);
        assert_eq!(owe(Model::PayPerDeployment(PayPerDeployment { per_deployment: 10 }), None), 10);
        // 3 h × (2 cores × 1000 + 0.5 GiB × 100 + 1 GPU × 10_000).
        let resources = Model::PayPerResourceUtilization(PayPerResourceUtilization {
            per_core_hour: 1_000,
            per_gib_hour: 100,
            per_gpu_hour: 10_000,
        });
        assert_eq!(owe(resources, None), 3 * (2_000 + 50 + 10_000));
        assert_eq!(
            owe(Model::PayPerTimeUtilization(PayPerTimeUtilization { per_hour: 1_000_000 }), None),
            3_000_000
        );
        assert_eq!(owe(Model::Periodic(Periodic { per_period: 5, period_secs: 7_000 }), None), 10);
        let capped = owe(
            Model::PayPerTimeUtilization(PayPerTimeUtilization { per_hour: 1_000_000 }),
            Some(2_500_000),
        );
        assert_eq!(capped, 2_500_000);
    }

    #[test]
    fn receipts_of_another_contract_or_provider_are_refused() {
        let provider = key();
        let ours = contract(
            &provider,
            Model::PayPerTimeUtilization(PayPerTimeUtilization { per_hour: 1 }),
            None,
        );
        let theirs = contract(
            &provider,
            Model::PayPerTimeUtilization(PayPerTimeUtilization { per_hour: 1 }),
            None,
        );
        let foreign =
            receipts(&theirs, &provider, "a", &[Usage { wall_secs: 1, ..Usage::default() }]);
        assert!(owed(&ours, &foreign).is_err());
        let stranger = key();
        let by_stranger =
            receipts(&ours, &stranger, "a", &[Usage { wall_secs: 1, ..Usage::default() }]);
        assert!(owed(&ours, &by_stranger).is_err());
    }
}
