//! Whether this node's allocations can join deployments' subnets (`[subnet]`), and the
//! runtime when they can: started on the node's own key, on the UDP port it had before
//! when the configuration leaves the port free (peers that hold routes to this node keep
//! reaching it after a restart), and announced at the address other machines reach
//! this one at.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs as _};
use std::path::Path;

use dms_provider::subnet::SubnetHost;

use crate::NetworkRuntime;
use crate::config::Config;

/// The largest interface MTU whose packets, framed, fit one QUIC datagram on a path that
/// carries 1452-byte UDP payloads.
const MAX_MTU: u16 = 1400;

/// The runtime, or why allocations here cannot join subnets.
pub(crate) fn host(network: &NetworkRuntime, config: &Config, store_dir: &Path) -> SubnetHost {
    match start(network, config, store_dir) {
        Ok(host) => host,
        Err(why) => {
            tracing::warn!(%why, "Allocations here cannot join subnets.");
            SubnetHost::Unavailable(why)
        }
    }
}

fn start(
    network: &NetworkRuntime,
    config: &Config,
    store_dir: &Path,
) -> Result<SubnetHost, String> {
    let s = &config.subnet;
    if !s.enabled {
        return Err("subnets are disabled here (subnet.enabled)".into());
    }
    if std::env::consts::ARCH != "x86_64" {
        return Err(format!(
            "the sandbox that holds an allocation's network is built for x86_64 only; this \
             machine is {}",
            std::env::consts::ARCH
        ));
    }
    dms_subnet::tun::probe()?;
    if !(576..=MAX_MTU).contains(&s.mtu) {
        return Err(format!("subnet.mtu {} is not from 576 to {MAX_MTU}", s.mtu));
    }
    let mut listen = s.listen().map_err(|e| e.to_string())?;
    let port_file = store_dir.join("subnet-port");
    let earlier = std::fs::read_to_string(&port_file).ok().and_then(|p| p.trim().parse().ok());
    let key = dms_network::identity_of(network.actor.signing_key()).map_err(|e| e.to_string())?;
    let subnet = match earlier.filter(|_| listen.port() == 0) {
        // The port it had, when still free; else a new one.
        Some(port) => dms_subnet::Subnet::start(
            &key,
            &dms_subnet::Config { listen: SocketAddr::new(listen.ip(), port), mtu: s.mtu },
        )
        .ok(),
        None => None,
    };
    let subnet = match subnet {
        Some(subnet) => subnet,
        None => dms_subnet::Subnet::start(&key, &dms_subnet::Config { listen, mtu: s.mtu })
            .map_err(|e| {
                format!("the subnet endpoint cannot listen on {listen} (subnet.listen): {e}")
            })?,
    };
    listen.set_port(subnet.local_addr().map_err(|e| e.to_string())?.port());
    if let Err(error) = std::fs::write(&port_file, listen.port().to_string()) {
        tracing::warn!(%error, path = %port_file.display(), "Cannot keep the subnet port.");
    }
    let endpoints = vec![endpoint(listen, &config.deployment.public_host())?];
    Ok(SubnetHost::Ready { subnet, endpoints })
}

/// Where other machines reach the endpoint bound at `listen`: that address, or when it
/// is every address, the node's public host (`deployment.public_address`, a name or an
/// address, or the address the default route leaves by).
fn endpoint(listen: SocketAddr, public_host: &str) -> Result<SocketAddr, String> {
    if !listen.ip().is_unspecified() {
        return Ok(listen);
    }
    if let Ok(ip) = public_host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, listen.port()));
    }
    (public_host, listen.port())
        .to_socket_addrs()
        .ok()
        .and_then(|mut found| found.find(SocketAddr::is_ipv4))
        .ok_or_else(|| {
            format!(
                "deployment.public_address {public_host:?} does not resolve to an IPv4 \
                 address; set it to one, or set subnet.listen to a specific address"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn the_endpoint_is_the_listen_address_or_the_public_host_with_the_bound_port() {
        let any: SocketAddr = "0.0.0.0:4100".parse().expect("addr");
        let own: SocketAddr = "10.1.2.3:4100".parse().expect("addr");
        assert_eq!(endpoint(own, "192.0.2.9"), Ok(own));
        assert_eq!(endpoint(any, "192.0.2.9"), Ok("192.0.2.9:4100".parse().expect("addr")));
        assert_eq!(endpoint(any, "localhost").map(|a| a.ip()), Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert!(
            endpoint(any, "no-such-host.invalid")
                .expect_err("unresolved")
                .contains("public_address")
        );
    }
}
