//! Amounts of money in integer micro-units (10⁻⁶) of a currency.

use serde::{Deserialize, Serialize};

use crate::Error;

/// Micro-units per unit.
pub const MICROS: u64 = 1_000_000;

/// An amount of a currency, in micro-units: `Amount::units(3, "USDT")` is 3 USDT.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Amount {
    /// Micro-units.
    pub micros: u64,
    /// The currency's code (`USDT`, `NTX`, ...).
    pub currency: String,
}

impl Amount {
    /// `micros` micro-units of `currency`.
    pub fn micros(micros: u64, currency: impl Into<String>) -> Amount {
        Amount { micros, currency: currency.into() }
    }

    /// `units` whole units of `currency`.
    pub fn units(units: u64, currency: impl Into<String>) -> Amount {
        Amount::micros(units.saturating_mul(MICROS), currency)
    }

    /// `units` (a decimal number, as configuration and ensembles write prices) in
    /// micro-units, rounded to the nearest; negative and non-finite numbers are 0, too
    /// large ones the most there is.
    pub fn of_units(units: f64, currency: impl Into<String>) -> Amount {
        let micros = (units * MICROS as f64).round();
        let micros = if micros.is_finite() && micros > 0.0 { micros as u64 } else { 0 };
        Amount::micros(micros, currency)
    }

    /// Nothing, in `currency`.
    pub fn zero(currency: impl Into<String>) -> Amount {
        Amount::micros(0, currency)
    }

    /// The sum, in the same currency.
    pub fn plus(&self, other: &Amount) -> Result<Amount, Error> {
        self.same_currency(other)?;
        let micros = self.micros.checked_add(other.micros).ok_or(Error::Overflow)?;
        Ok(Amount::micros(micros, self.currency.clone()))
    }

    /// The smaller of two amounts of the same currency.
    pub fn min(&self, other: &Amount) -> Result<Amount, Error> {
        self.same_currency(other)?;
        Ok(if self.micros <= other.micros { self.clone() } else { other.clone() })
    }

    fn same_currency(&self, other: &Amount) -> Result<(), Error> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(Error::Currency { left: self.currency.clone(), right: other.currency.clone() })
        }
    }
}

impl std::fmt::Display for Amount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (units, micros) = (self.micros / MICROS, self.micros % MICROS);
        if micros == 0 {
            write!(f, "{units} {}", self.currency)
        } else {
            let fraction = format!("{micros:06}");
            write!(f, "{units}.{} {}", fraction.trim_end_matches('0'), self.currency)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_add_within_a_currency_and_print_exactly() {
        let a = Amount::micros(1_500_000, "USDT");
        let b = Amount::micros(250_001, "USDT");
        assert_eq!(a.plus(&b).expect("same currency").to_string(), "1.750001 USDT");
        assert_eq!(Amount::units(3, "NTX").to_string(), "3 NTX");
        assert_eq!(Amount::of_units(0.25, "NTX").micros, 250_000);
        assert_eq!(Amount::of_units(-1.0, "NTX").micros, 0);
        assert_eq!(Amount::of_units(f64::NAN, "NTX").micros, 0);
        assert_eq!(Amount::of_units(1e30, "NTX").micros, u64::MAX);
        assert!(matches!(a.plus(&Amount::units(1, "NTX")), Err(Error::Currency { .. })));
        assert_eq!(
            Amount::micros(u64::MAX, "X").plus(&Amount::micros(1, "X")),
            Err(Error::Overflow)
        );
    }
}
