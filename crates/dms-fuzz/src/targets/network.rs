//! `dms-network`: the length-prefixed frames of the direct-message protocol, read from
//! a libp2p stream before anything else looks at the bytes.

use futures::executor::block_on;
use futures::io::Cursor;
use libp2p::request_response::Codec;

use dms_network::codec::{FrameCodec, PROTOCOL};

use crate::Target;

/// [`FrameCodec`]'s `read_request` and `read_response`, frame after frame from one stream.
pub const FRAME: Target = Target {
    name: "frame",
    check: frames,
    generate: None,
    dictionary: &["\0\0\0\0", "\0\0\0\x01", "\0\0\x10\0", "\0\0\x10\x01", "\x7f\x7f\x7f\x7f"],
};

/// Largest frame accepted here (small, so that the limit is exercised).
const MAX: usize = 4096;

/// Reads frames from the bytes until the stream ends or fails: every frame read is at
/// most the limit, is exactly the bytes its prefix announces, and writing it gives back
/// the bytes it was read from. A frame over the limit is refused before it is read.
pub fn frames(bytes: &[u8]) -> bool {
    let mut codec = FrameCodec { max_bytes: MAX };
    let mut stream = Cursor::new(bytes);
    let mut accepted = false;
    loop {
        let start = usize::try_from(stream.position()).expect("a slice position fits");
        let read = if accepted {
            block_on(codec.read_response(&PROTOCOL, &mut stream))
        } else {
            block_on(codec.read_request(&PROTOCOL, &mut stream))
        };
        let Ok(frame) = read else {
            if let Some(prefix) = bytes.get(start..start + 4) {
                let announced = u32::from_be_bytes(prefix.try_into().expect("four bytes"));
                let available = bytes.len() - start - 4;
                let announced = usize::try_from(announced).expect("u32 fits usize");
                assert!(announced > MAX || announced > available, "a complete frame failed");
            }
            return accepted;
        };
        assert!(frame.len() <= MAX, "a frame over the limit was read");
        let end = usize::try_from(stream.position()).expect("a slice position fits");
        assert_eq!(end - start, frame.len() + 4, "a frame is its prefix and its bytes");
        assert_eq!(&bytes[start + 4..end], frame.as_slice());
        let mut written = Cursor::new(Vec::new());
        block_on(codec.write_request(&PROTOCOL, &mut written, frame.clone()))
            .expect("a frame writes to memory");
        assert_eq!(written.into_inner(), &bytes[start..end], "write(read(frame)) == frame");
        accepted = true;
    }
}
