//! The fuzz targets: one per decoder of bytes from the network or a file, grouped by
//! the crate that owns the decoder.

pub mod actor;
pub mod crypto;
pub mod ensemble;
pub mod network;
pub mod node;
pub mod protocol;
pub mod ucan;

use crate::Target;

/// Every target, in the order of the README's table.
pub const ALL: &[Target] = &[
    network::FRAME,
    actor::ENVELOPE,
    actor::ROUTER,
    ucan::TOKEN,
    ucan::CHAIN,
    crypto::DID,
    protocol::REQUEST,
    protocol::RESPONSE,
    ensemble::ENSEMBLE,
    ensemble::COMPOSE,
    ensemble::KUBERNETES,
    ensemble::NOMAD,
    crypto::KEYFILE,
    node::CONFIG,
];

/// The target named `name`.
pub fn by_name(name: &str) -> Option<&'static Target> {
    ALL.iter().find(|t| t.name == name)
}
