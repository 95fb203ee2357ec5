//! IPv4 packets as the switch needs them: the header fields read in place, the internet
//! checksum (RFC 1071), and the ICMP "fragmentation needed" answer (RFC 792, type 3
//! code 4 with the next-hop MTU of RFC 1191) sent back to a sender whose packet does
//! not fit the path, so that its kernel lowers its path MTU instead of losing data.

use std::net::Ipv4Addr;

/// The fields of an IPv4 header the switch uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Total length (header and payload).
    pub len: u16,
    /// Header length in bytes.
    pub header_len: usize,
    /// "Don't fragment" is set.
    pub dont_fragment: bool,
    /// The payload's protocol (6 TCP, 17 UDP, 1 ICMP).
    pub protocol: u8,
}

/// The header of `packet`, when it is a well-formed IPv4 packet no longer than the
/// buffer.
pub fn ipv4(packet: &[u8]) -> Option<Header> {
    let first = *packet.first()?;
    let header_len = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || header_len < 20 || packet.len() < header_len {
        return None;
    }
    let len = u16::from_be_bytes([packet[2], packet[3]]);
    if usize::from(len) < header_len || usize::from(len) > packet.len() {
        return None;
    }
    let at = |i: usize| Ipv4Addr::new(packet[i], packet[i + 1], packet[i + 2], packet[i + 3]);
    Some(Header {
        src: at(12),
        dst: at(16),
        len,
        header_len,
        dont_fragment: packet[6] & 0x40 != 0,
        protocol: packet[9],
    })
}

/// The internet checksum of `data` (the ones' complement of the ones' complement sum of
/// its 16-bit words).
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The ICMP "fragmentation needed" packet that tells the sender of `original` (from
/// `router`, the address the answer comes from) that at most `mtu` bytes get through;
/// `None` when `original` is not an IPv4 packet with "don't fragment" set (others are
/// simply dropped) or is itself ICMP (never answered, to avoid loops).
pub fn fragmentation_needed(original: &[u8], mtu: u16, router: Ipv4Addr) -> Option<Vec<u8>> {
    let header = ipv4(original)?;
    if !header.dont_fragment || header.protocol == 1 {
        return None;
    }
    // The original header and the first 8 bytes of its payload.
    let quoted = &original[..(header.header_len + 8).min(usize::from(header.len))];
    let mut icmp = vec![3u8, 4, 0, 0, 0, 0];
    icmp.extend_from_slice(&mtu.to_be_bytes());
    icmp.extend_from_slice(quoted);
    let sum = checksum(&icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let total = u16::try_from(20 + icmp.len()).ok()?;
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 1, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&router.octets());
    ip.extend_from_slice(&header.src.octets());
    let sum = checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip.extend_from_slice(&icmp);
    Some(ip)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A UDP packet from `src` to `dst` with `payload`, "don't fragment" set.
    pub(crate) fn udp(src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
        let total = (28 + payload.len()) as u16;
        let mut p = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0];
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        let sum = checksum(&p);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        p.extend_from_slice(&[0x30, 0x39, 0x00, 0x35]);
        p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn headers_are_read_and_malformed_packets_refused() {
        let p = udp([10, 42, 0, 2], [10, 42, 0, 3], b"hello");
        let h = ipv4(&p).expect("IPv4");
        assert_eq!(
            (h.src, h.dst, h.len, h.protocol),
            (Ipv4Addr::new(10, 42, 0, 2), Ipv4Addr::new(10, 42, 0, 3), 33, 17)
        );
        assert!(h.dont_fragment);
        assert_eq!(checksum(&p[..20]), 0, "a correct header sums to zero");
        assert!(ipv4(&p[..30]).is_none(), "shorter than its length");
        let mut v6 = p.clone();
        v6[0] = 0x60;
        assert!(ipv4(&v6).is_none());
        assert!(ipv4(&[]).is_none());
    }

    #[test]
    fn too_large_packets_are_answered_with_the_mtu_and_icmp_never_is() {
        let p = udp([10, 42, 0, 2], [10, 42, 0, 3], &[7u8; 1500]);
        let answer = fragmentation_needed(&p, 1400, Ipv4Addr::new(10, 42, 0, 1)).expect("DF set");
        let h = ipv4(&answer).expect("an IPv4 answer");
        assert_eq!(
            (h.src, h.dst, h.protocol),
            (Ipv4Addr::new(10, 42, 0, 1), Ipv4Addr::new(10, 42, 0, 2), 1)
        );
        assert_eq!(checksum(&answer[..20]), 0);
        let icmp = &answer[20..];
        assert_eq!((icmp[0], icmp[1]), (3, 4));
        assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), 1400);
        assert_eq!(checksum(icmp), 0);
        assert_eq!(&icmp[8..], &p[..28], "the original header and 8 bytes");
        assert!(fragmentation_needed(&answer, 1400, Ipv4Addr::new(10, 42, 0, 1)).is_none());
        let mut may_fragment = p.clone();
        may_fragment[6] = 0;
        assert!(fragmentation_needed(&may_fragment, 1400, Ipv4Addr::new(10, 42, 0, 1)).is_none());
    }
}
