//! Payment models behind one trait: each of NuNet's models (`fixed_rental`,
//! `pay_per_allocation`, `pay_per_deployment`, `pay_per_resource_utilization`,
//! `pay_per_time_utilization`, `periodic`) is a [`Processor`] — what is owed for what the
//! receipts add up to, and what it pays per hour — and [`Model`] is the one a contract
//! names. A new model is a new processor and a new variant; nothing else changes. Prices
//! are in micro-units of the contract's currency; formulas saturate (an absurd receipt
//! owes the most, never wraps to little) and round down once, on the total.

use serde::{Deserialize, Serialize};

use crate::Amount;
use crate::receipt::Usage;

/// Seconds per hour.
const HOUR: u128 = 3_600;

/// What receipts add up to, as a processor sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Used<'a> {
    /// Everything used.
    pub usage: &'a Usage,
    /// How many allocations used anything.
    pub allocations: usize,
    /// How many deployments used anything.
    pub deployments: usize,
}

/// A payment processor: one payment model's formula.
pub trait Processor {
    /// NuNet's name of the model (`pay_per_time_utilization`, ...).
    fn name(&self) -> &'static str;

    /// What is owed for `used`, in micro-units (uncapped: the contract's `max_total`
    /// applies on top).
    fn owed(&self, used: &Used<'_>) -> u128;

    /// Whether it pays by time (then [`Processor::hourly`] is its rate).
    fn by_time(&self) -> bool {
        true
    }

    /// What it pays per hour for one allocation holding `cpu_millicores`, `ram_mib` and
    /// `gpus`, in micro-units; `None` for models that do not pay by time.
    fn hourly(&self, cpu_millicores: u64, ram_mib: u64, gpus: u64) -> Option<u128> {
        let hour = HOUR as u64;
        let usage = Usage {
            wall_secs: hour,
            cpu_millicore_secs: cpu_millicores.saturating_mul(hour),
            ram_mib_secs: ram_mib.saturating_mul(hour),
            gpu_secs: gpus.saturating_mul(hour),
        };
        let used = Used { usage: &usage, allocations: 1, deployments: 1 };
        self.by_time().then(|| self.owed(&used))
    }

    /// Its prices, for people (`0.5 USD per hour`).
    fn prices(&self, currency: &str) -> String;
}

fn times(a: u128, b: u128) -> u128 {
    a.saturating_mul(b)
}

fn at(micros: u64, currency: &str) -> Amount {
    Amount::micros(micros, currency)
}

/// A flat amount for the contract, owed once any work was done under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedRental {
    /// The amount.
    pub amount: u64,
}

impl Processor for FixedRental {
    fn name(&self) -> &'static str {
        "fixed_rental"
    }
    fn owed(&self, used: &Used<'_>) -> u128 {
        if used.usage.is_zero() { 0 } else { u128::from(self.amount) }
    }
    fn by_time(&self) -> bool {
        false
    }
    fn prices(&self, currency: &str) -> String {
        format!("{} once", at(self.amount, currency))
    }
}

/// An amount per allocation that ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayPerAllocation {
    /// Per allocation.
    pub per_allocation: u64,
}

impl Processor for PayPerAllocation {
    fn name(&self) -> &'static str {
        "pay_per_allocation"
    }
    fn owed(&self, used: &Used<'_>) -> u128 {
        times(used.allocations as u128, self.per_allocation.into())
    }
    fn by_time(&self) -> bool {
        false
    }
    fn prices(&self, currency: &str) -> String {
        format!("{} per allocation", at(self.per_allocation, currency))
    }
}

/// An amount per deployment that ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayPerDeployment {
    /// Per deployment.
    pub per_deployment: u64,
}

impl Processor for PayPerDeployment {
    fn name(&self) -> &'static str {
        "pay_per_deployment"
    }
    fn owed(&self, used: &Used<'_>) -> u128 {
        times(used.deployments as u128, self.per_deployment.into())
    }
    fn by_time(&self) -> bool {
        false
    }
    fn prices(&self, currency: &str) -> String {
        format!("{} per deployment", at(self.per_deployment, currency))
    }
}

/// Resources held × time: CPU cores, memory (GiB) and GPUs, per hour each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayPerResourceUtilization {
    /// Per core-hour.
    pub per_core_hour: u64,
    /// Per GiB-hour of memory.
    pub per_gib_hour: u64,
    /// Per GPU-hour.
    pub per_gpu_hour: u64,
}

impl Processor for PayPerResourceUtilization {
    fn name(&self) -> &'static str {
        "pay_per_resource_utilization"
    }
    fn owed(&self, used: &Used<'_>) -> u128 {
        let u = used.usage;
        // Over a common denominator, so that only the total is rounded.
        let cpu = times(times(u.cpu_millicore_secs.into(), self.per_core_hour.into()), 1024);
        let ram = times(times(u.ram_mib_secs.into(), self.per_gib_hour.into()), 1000);
        let gpu = times(times(u.gpu_secs.into(), self.per_gpu_hour.into()), 1000 * 1024);
        cpu.saturating_add(ram).saturating_add(gpu) / (HOUR * 1000 * 1024)
    }
    fn prices(&self, currency: &str) -> String {
        format!(
            "{} per core-hour, {} per GiB-hour, {} per GPU-hour",
            at(self.per_core_hour, currency),
            at(self.per_gib_hour, currency),
            at(self.per_gpu_hour, currency)
        )
    }
}

/// Wall-clock time of the allocations, per hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayPerTimeUtilization {
    /// Per hour.
    pub per_hour: u64,
}

impl Processor for PayPerTimeUtilization {
    fn name(&self) -> &'static str {
        "pay_per_time_utilization"
    }
    fn owed(&self, used: &Used<'_>) -> u128 {
        times(used.usage.wall_secs.into(), self.per_hour.into()) / HOUR
    }
    fn prices(&self, currency: &str) -> String {
        format!("{} per hour", at(self.per_hour, currency))
    }
}

/// An amount per period of running time begun.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Periodic {
    /// Per period.
    pub per_period: u64,
    /// The period, in seconds (at least 1).
    pub period_secs: u64,
}

impl Processor for Periodic {
    fn name(&self) -> &'static str {
        "periodic"
    }
    fn owed(&self, used: &Used<'_>) -> u128 {
        let periods =
            u128::from(used.usage.wall_secs).div_ceil(u128::from(self.period_secs.max(1)));
        times(periods, self.per_period.into())
    }
    fn prices(&self, currency: &str) -> String {
        format!("{} per {} s begun", at(self.per_period, currency), self.period_secs)
    }
}

/// How the provider is paid: one of the processors above. On the wire and in a
/// contract's terms it is externally tagged: `{"pay_per_time_utilization": {"per_hour":
/// 500000}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Model {
    /// [`FixedRental`].
    FixedRental(FixedRental),
    /// [`PayPerAllocation`].
    PayPerAllocation(PayPerAllocation),
    /// [`PayPerDeployment`].
    PayPerDeployment(PayPerDeployment),
    /// [`PayPerResourceUtilization`].
    PayPerResourceUtilization(PayPerResourceUtilization),
    /// [`PayPerTimeUtilization`].
    PayPerTimeUtilization(PayPerTimeUtilization),
    /// [`Periodic`].
    Periodic(Periodic),
}

impl Model {
    /// Its processor.
    pub fn processor(&self) -> &dyn Processor {
        match self {
            Model::FixedRental(p) => p,
            Model::PayPerAllocation(p) => p,
            Model::PayPerDeployment(p) => p,
            Model::PayPerResourceUtilization(p) => p,
            Model::PayPerTimeUtilization(p) => p,
            Model::Periodic(p) => p,
        }
    }

    /// NuNet's name of the model (`pay_per_time_utilization`, ...).
    pub fn name(&self) -> &'static str {
        self.processor().name()
    }

    /// The model and its prices, for people: `pay_per_time_utilization: 0.5 USD per hour`.
    pub fn describe(&self, currency: &str) -> String {
        format!("{}: {}", self.name(), self.processor().prices(currency))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_form_is_externally_tagged_and_prices_read_for_people() {
        let model = Model::PayPerTimeUtilization(PayPerTimeUtilization { per_hour: 500_000 });
        let json = serde_json::to_string(&model).expect("json");
        assert_eq!(json, r#"{"pay_per_time_utilization":{"per_hour":500000}}"#);
        assert_eq!(serde_json::from_str::<Model>(&json).expect("back"), model);
        // In a contract's terms too (its id depends on it): a one-key map of a map.
        let value: serde_json::Value = serde_json::from_str(&json).expect("value");
        assert_eq!(
            serde_ipld_dagcbor::to_vec(&model).expect("cbor"),
            serde_ipld_dagcbor::to_vec(&value).expect("cbor")
        );
        assert_eq!(model.describe("USD"), "pay_per_time_utilization: 0.5 USD per hour");
        assert_eq!(model.processor().hourly(0, 0, 0), Some(500_000));
        let once = Model::FixedRental(FixedRental { amount: 3_000_000 });
        assert_eq!(once.processor().hourly(1000, 1024, 1), None);
        assert_eq!(once.describe("NTX"), "fixed_rental: 3 NTX once");
    }
}
