//! Packets between providers: QUIC DATAGRAM frames (RFC 9221) on a quinn endpoint of its
//! own, authenticated with the node's libp2p identity (libp2p's TLS certificates, so the
//! peer id a connection proves is the peer id the orchestrator names in the routes).
//!
//! Datagrams, not streams: IP wants unreliable, unordered delivery; a stream would add
//! head-of-line blocking and retransmit under TCP's own retransmissions. Streams are
//! disabled on these connections. A frame is `[VERSION][tag: 8 bytes][IPv4 packet]`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use libp2p_identity::{Keypair, PeerId};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{ClientConfig, Connection, Endpoint, ServerConfig, TransportConfig, VarInt};

/// The ALPN of this protocol (distinct from libp2p's own QUIC, which is `libp2p`).
pub const ALPN: &[u8] = b"dms-subnet/1";
/// The first byte of every frame.
pub const VERSION: u8 = 1;
/// Bytes a frame adds to a packet.
pub const OVERHEAD: usize = 1 + 8;
/// The UDP payload the endpoint starts with and probes up to: 1500-byte Ethernet minus
/// IPv6 (40) and UDP (8) headers, so that paths over IPv6 carry it too.
pub const UDP_PAYLOAD: u16 = 1452;

/// Why the endpoint could not be made.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// A bound endpoint that accepts and dials subnet connections as `keypair`.
pub fn endpoint(keypair: &Keypair, listen: SocketAddr) -> Result<Endpoint, Error> {
    let mut tls = libp2p_tls::make_server_config(keypair)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let mut server = ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls)?));
    server.transport_config(transport());
    Ok(Endpoint::server(server, listen)?)
}

/// The client settings to dial `peer`: the handshake fails unless the remote proves it.
pub fn client(keypair: &Keypair, peer: PeerId) -> Result<ClientConfig, Error> {
    let mut tls = libp2p_tls::make_client_config(keypair, Some(peer))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let mut client = ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls)?));
    client.transport_config(transport());
    Ok(client)
}

fn transport() -> Arc<TransportConfig> {
    let mut t = TransportConfig::default();
    t.max_concurrent_bidi_streams(VarInt::from_u32(0))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .datagram_receive_buffer_size(Some(4 << 20))
        .datagram_send_buffer_size(4 << 20)
        .initial_mtu(UDP_PAYLOAD)
        .keep_alive_interval(Some(Duration::from_secs(5)))
        .max_idle_timeout(Some(VarInt::from_u32(30_000).into()));
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(UDP_PAYLOAD);
    t.mtu_discovery_config(Some(mtu));
    Arc::new(t)
}

/// The peer a connection's certificate proves.
pub fn remote_peer(connection: &Connection) -> Option<PeerId> {
    let identity = connection.peer_identity()?;
    let certificates =
        identity.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>().ok()?;
    let certificate = libp2p_tls::certificate::parse(certificates.first()?).ok()?;
    Some(certificate.peer_id())
}

/// Writes the frame header of deployment `tag` into the first [`OVERHEAD`] bytes of
/// `frame` (the packet follows).
pub fn write_header(tag: &[u8; 8], frame: &mut [u8]) {
    frame[0] = VERSION;
    frame[1..OVERHEAD].copy_from_slice(tag);
}

/// The tag and packet of a frame; `None` for another version or a short frame.
pub fn unframe(frame: &[u8]) -> Option<([u8; 8], &[u8])> {
    let (&version, rest) = frame.split_first()?;
    if version != VERSION || rest.len() < 8 {
        return None;
    }
    let (tag, packet) = rest.split_at(8);
    Some((tag.try_into().ok()?, packet))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// `packet` as a frame of the deployment tagged `tag`.
    fn frame(tag: &[u8; 8], packet: &[u8]) -> Bytes {
        let mut frame = vec![0u8; OVERHEAD];
        write_header(tag, &mut frame);
        frame.extend_from_slice(packet);
        frame.into()
    }

    #[test]
    fn frames_carry_the_tag_and_packet_and_refuse_other_versions() {
        let framed = frame(&[7; 8], b"packet");
        assert_eq!(framed.len(), OVERHEAD + 6);
        assert_eq!(unframe(&framed), Some(([7; 8], &b"packet"[..])));
        let mut other = framed.to_vec();
        other[0] = 2;
        assert_eq!(unframe(&other), None);
        assert_eq!(unframe(&framed[..5]), None);
    }

    #[tokio::test]
    async fn a_connection_proves_both_peers_and_a_wrong_peer_is_refused() {
        let [a, b, c] = [(); 3].map(|()| Keypair::generate_ed25519());
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let server = endpoint(&b, any).expect("server");
        let dialer = endpoint(&a, any).expect("client");
        let addr = server.local_addr().expect("bound");

        let accept = tokio::spawn(async move {
            let incoming = server.accept().await.expect("incoming");
            let connection = incoming.await.expect("handshake");
            let peer = remote_peer(&connection);
            let datagram = connection.read_datagram().await.expect("datagram");
            // Keep accepting: the wrong-peer dial below must reach the handshake.
            tokio::spawn(async move {
                while let Some(incoming) = server.accept().await {
                    let _ = incoming.await;
                }
            });
            (peer, datagram)
        });
        let connection = dialer
            .connect_with(client(&a, b.public().to_peer_id()).expect("config"), addr, "l")
            .expect("connect")
            .await
            .expect("handshake");
        assert_eq!(remote_peer(&connection), Some(b.public().to_peer_id()));
        assert!(connection.max_datagram_size().expect("datagrams on") >= 1400 + OVERHEAD);
        connection.send_datagram(frame(&[1; 8], b"hi")).expect("sent");
        let (peer, datagram) = accept.await.expect("join");
        assert_eq!(peer, Some(a.public().to_peer_id()));
        assert_eq!(unframe(&datagram), Some(([1; 8], &b"hi"[..])));

        // Dialing the same endpoint while expecting another peer fails the handshake.
        let wrong = dialer
            .connect_with(client(&a, c.public().to_peer_id()).expect("config"), addr, "l")
            .expect("connect")
            .await;
        assert!(wrong.is_err(), "a connection to the wrong peer must fail");
    }
}
