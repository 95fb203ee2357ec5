//! The data path: the task reading each allocation's interface and the task reading each
//! provider connection. Both work in batches: an interface read returns up to a
//! 64 KiB TCP segment that the kernel hands over whole (TUN offload, `IFF_VNET_HDR`) and
//! that is split here into MTU-sized packets; frames waiting on a connection are taken
//! together and written to the interface merged where TCP allows (GRO). One lock of the
//! table per batch, not per packet.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures::FutureExt as _;
use quinn::Connection;
use tracing::{debug, warn};
use tun_rs::{AsyncDevice, GROTable, IDEAL_BATCH_SIZE, VIRTIO_NET_HDR_LEN};

use crate::host::Inner;
use crate::switch::Verdict;
use crate::{link, packet};

/// Reads in a row that may fail before an interface is given up on.
const MAX_FAILED_READS: u32 = 100;

/// Where one packet of a batch goes.
enum Target {
    Local(Arc<AsyncDevice>),
    Remote(Connection),
    Nowhere,
}

/// Carries the packets an allocation sends.
pub(crate) async fn read_local(
    inner: Arc<Inner>,
    tag: [u8; 8],
    allocation: String,
    device: Arc<AsyncDevice>,
) {
    let mut original = vec![0u8; VIRTIO_NET_HDR_LEN + 65_535];
    // Each packet lands after room for the frame header, so a frame is one copy.
    let mut bufs = vec![vec![0u8; link::OVERHEAD + usize::from(inner.mtu)]; IDEAL_BATCH_SIZE];
    let mut sizes = vec![0usize; IDEAL_BATCH_SIZE];
    let mut gro = GROTable::default();
    let mut failures = 0u32;
    loop {
        let read = device.recv_multiple(&mut original, &mut bufs, &mut sizes, link::OVERHEAD);
        let n = match read.await {
            Ok(n) => {
                failures = 0;
                n
            }
            // One bad read (a segment that splits into more packets than a batch holds,
            // a malformed header) drops what it read; only a lasting failure ends the
            // reader.
            Err(e) if failures < MAX_FAILED_READS => {
                failures += 1;
                count(&inner, false, 1);
                debug!(%allocation, error = %e, "A read of the allocation's interface failed.");
                continue;
            }
            Err(e) => {
                warn!(%allocation, error = %e, "The allocation's interface fails; its packets stop.");
                return;
            }
        };
        let targets: Vec<Target> = {
            let state = inner.state();
            (0..n)
                .map(|i| {
                    let packet = &bufs[i][link::OVERHEAD..link::OVERHEAD + sizes[i]];
                    match state.switch.outbound(&tag, &allocation, packet) {
                        Verdict::Local(to) => state
                            .local
                            .get(&(tag, to))
                            .map_or(Target::Nowhere, |l| Target::Local(l.device.clone())),
                        Verdict::Remote(peer) => state
                            .peers
                            .get(&peer)
                            .and_then(|p| p.connection.clone())
                            // Not connected yet: the dial task is at it; TCP retransmits.
                            .map_or(Target::Nowhere, Target::Remote),
                        Verdict::Drop(why) => {
                            debug!(%allocation, ?why, "Dropped an outbound packet.");
                            Target::Nowhere
                        }
                    }
                })
                .collect()
        };
        for (i, target) in targets.into_iter().enumerate() {
            let frame = &mut bufs[i][..link::OVERHEAD + sizes[i]];
            match target {
                Target::Local(to) => {
                    let packet = &frame[link::OVERHEAD..];
                    let delivered = write(&to, &mut gro, vec![with_header(packet)]).await;
                    count(&inner, delivered, 1);
                }
                Target::Remote(connection) => send(&inner, &tag, frame, &connection, &device).await,
                Target::Nowhere => count(&inner, false, 1),
            }
        }
    }
}

/// Sends one frame (header room first, packet after) to a provider; a packet too large
/// for what the connection carries is answered, to its sender, with ICMP
/// "fragmentation needed".
async fn send(
    inner: &Inner,
    tag: &[u8; 8],
    frame: &mut [u8],
    connection: &Connection,
    source: &AsyncDevice,
) {
    let room = connection.max_datagram_size().unwrap_or(0);
    if frame.len() > room {
        count(inner, false, 1);
        let packet = &frame[link::OVERHEAD..];
        let mtu = u16::try_from(room.saturating_sub(link::OVERHEAD)).unwrap_or(u16::MAX);
        let router = packet::ipv4(packet).map_or(Ipv4Addr::UNSPECIFIED, |h| h.dst);
        if let Some(answer) = packet::fragmentation_needed(packet, mtu, router) {
            let _ = write(source, &mut GROTable::default(), vec![with_header(&answer)]).await;
        }
        return;
    }
    link::write_header(tag, frame);
    match connection.send_datagram(Bytes::copy_from_slice(frame)) {
        Ok(()) => inner.counters.sent.fetch_add(1, Ordering::Relaxed),
        Err(_) => inner.counters.dropped.fetch_add(1, Ordering::Relaxed),
    };
}

/// Lets in the frames a provider sends, as the switch allows.
pub(crate) async fn read_remote(inner: Arc<Inner>, peer: String, connection: Connection) {
    let mut gro = GROTable::default();
    while let Ok(first) = connection.read_datagram().await {
        let mut frames = vec![first];
        while frames.len() < IDEAL_BATCH_SIZE {
            match connection.read_datagram().now_or_never() {
                Some(Ok(frame)) => frames.push(frame),
                _ => break,
            }
        }
        // Packets by the interface they go to, in arrival order.
        let mut batches: Vec<(Arc<AsyncDevice>, Vec<Vec<u8>>)> = Vec::new();
        let mut dropped = 0;
        {
            let state = inner.state();
            for frame in &frames {
                let device = link::unframe(frame).and_then(|(tag, packet)| {
                    match state.switch.inbound(&tag, &peer, packet) {
                        Verdict::Local(to) => {
                            state.local.get(&(tag, to)).map(|l| (l.device.clone(), packet))
                        }
                        _ => None,
                    }
                });
                let Some((device, packet)) = device else {
                    dropped += 1;
                    continue;
                };
                match batches.iter_mut().find(|(d, _)| Arc::ptr_eq(d, &device)) {
                    Some((_, packets)) => packets.push(with_header(packet)),
                    None => batches.push((device, vec![with_header(packet)])),
                }
            }
        }
        count(&inner, false, dropped);
        for (device, packets) in batches {
            let n = packets.len();
            let delivered = write(&device, &mut gro, packets).await;
            count(&inner, delivered, n);
        }
    }
    debug!(%peer, reason = ?connection.close_reason(), "Subnet connection closed.");
}

/// `packet` after room for the virtio header the interface expects.
fn with_header(packet: &[u8]) -> Vec<u8> {
    let mut buffer = Vec::with_capacity(VIRTIO_NET_HDR_LEN + packet.len());
    buffer.resize(VIRTIO_NET_HDR_LEN, 0);
    buffer.extend_from_slice(packet);
    buffer
}

/// Writes packets (each after header room) to an interface, merged where possible.
async fn write(device: &AsyncDevice, gro: &mut GROTable, mut packets: Vec<Vec<u8>>) -> bool {
    device.send_multiple(gro, &mut packets, VIRTIO_NET_HDR_LEN).await.is_ok()
}

fn count(inner: &Inner, delivered: bool, n: usize) {
    let counter = if delivered { &inner.counters.delivered } else { &inner.counters.dropped };
    counter.fetch_add(n as u64, Ordering::Relaxed);
}
