//! Errors of parsing human-written amounts (sizes, CPU) and names (GPU vendors).
//!
//! Every message names the input and the forms that are accepted, so it can be shown to a
//! user as is (`dms onboard --ram 8GB` → `invalid size "8GBs": …`).

/// The accepted forms of a size, quoted by the size errors.
const SIZE_FORMS: &str = "a number of bytes (1073741824) or a number and a unit (512MiB, 8 GB, \
    1.5TiB); units B, KB, MB, GB, TB, PB, EB (powers of 1000) or KiB, MiB, GiB, TiB, PiB, EiB \
    (powers of 1024), in any case";

/// The accepted forms of a CPU amount, quoted by the CPU errors.
const CPU_FORMS: &str = "cores (4, 2.5) or millicores (500m)";

/// A human-written amount or name that could not be parsed. Nothing else happened: parsing
/// has no side effects, and the caller may ask again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A size is not a non-negative decimal number followed by an optional unit.
    #[error("invalid size {input:?}: expected {SIZE_FORMS}")]
    InvalidSize {
        /// The text as given.
        input: String,
    },

    /// A size has a well-formed number but a unit that is not one of the known ones.
    #[error("unknown unit {unit:?} in size {input:?}: expected {SIZE_FORMS}")]
    UnknownSizeUnit {
        /// The text as given.
        input: String,
        /// The unit part of it.
        unit: String,
    },

    /// A size is well-formed but more than `u64::MAX` bytes (16 EiB).
    #[error("size {input:?} is too large: the most is 18446744073709551615 bytes (16 EiB)")]
    SizeTooLarge {
        /// The text as given.
        input: String,
    },

    /// A CPU amount is neither a non-negative decimal number of cores nor a whole number of
    /// millicores followed by `m`.
    #[error("invalid CPU amount {input:?}: expected {CPU_FORMS}")]
    InvalidCpu {
        /// The text as given.
        input: String,
    },

    /// A CPU amount is finer than one millicore (`0.0005`, `2.5m`).
    #[error(
        "CPU amount {input:?} is finer than one millicore: use at most three decimals (2.125) \
         or whole millicores (2125m)"
    )]
    CpuTooPrecise {
        /// The text as given.
        input: String,
    },

    /// A CPU amount is well-formed but more than `u64::MAX` millicores.
    #[error("CPU amount {input:?} is too large: the most is 18446744073709551615m")]
    CpuTooLarge {
        /// The text as given.
        input: String,
    },

    /// A frequency, bandwidth or duration is not written in one of its forms (or is not
    /// a whole number of its base unit, or too large).
    #[error("invalid {what} {input:?}: expected {forms}")]
    InvalidQuantity {
        /// `frequency`, `bandwidth`, `duration`.
        what: &'static str,
        /// The text as given.
        input: String,
        /// The accepted forms.
        forms: &'static str,
    },

    /// A GPU vendor name is not one of the known ones.
    #[error("unknown GPU vendor {input:?}: expected nvidia, amd, intel or other")]
    UnknownGpuVendor {
        /// The text as given.
        input: String,
    },
}
