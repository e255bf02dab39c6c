//! Outgoing datagrams of one worker wake-up, sent with one `sendmmsg(2)`
//! per [`MAX_BATCH`] instead of one `sendto(2)` each.
//!
//! Packets are built in place in one arena (no allocation per packet once
//! the arena has grown to a wake-up's worth) and sent before the worker
//! sleeps again, so batching adds no delay beyond the wake-up's own work.

use std::{net::SocketAddr, ops::Range, os::fd::AsRawFd, time::Instant};

use nix::{
    errno::Errno,
    sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg},
};

/// Datagrams per `sendmmsg` call (the kernel caps a call at `UIO_MAXIOV`,
/// 1024); [`SendBatch::push`] reports full at this many.
pub(crate) const MAX_BATCH: usize = 64;

/// What a flush did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flushed {
    /// Datagrams the kernel took.
    pub sent: usize,
    /// Datagrams refused (full socket buffer, unreachable destination):
    /// dropped, as a single UDP send would drop them.
    pub dropped: usize,
    /// `sendmmsg` calls made.
    pub calls: usize,
}

/// Datagrams waiting to be sent, in order.
pub(crate) struct SendBatch {
    arena: Vec<u8>,
    spans: Vec<Range<usize>>,
    dests: Vec<Option<SockaddrStorage>>,
    /// When each forwarded packet reached the SFU (for the delay histogram).
    arrivals: Vec<Option<Instant>>,
    headers: MultiHeaders<SockaddrStorage>,
}

impl std::fmt::Debug for SendBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendBatch")
            .field("pending", &self.spans.len())
            .finish()
    }
}

impl Default for SendBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl SendBatch {
    pub(crate) fn new() -> Self {
        Self {
            arena: Vec::with_capacity(MAX_BATCH * 256),
            spans: Vec::with_capacity(MAX_BATCH),
            dests: Vec::with_capacity(MAX_BATCH),
            arrivals: Vec::with_capacity(MAX_BATCH),
            headers: MultiHeaders::preallocate(MAX_BATCH, None),
        }
    }

    /// Datagrams waiting.
    pub(crate) fn len(&self) -> usize {
        self.spans.len()
    }

    /// Appends one datagram to `dest`, written by `build` at the end of the
    /// arena; `arrival` is when the forwarded packet it carries reached the
    /// SFU (`None` for str0m's own datagrams). Returns `true` when the batch
    /// is full and should be flushed.
    pub(crate) fn push(
        &mut self,
        dest: SocketAddr,
        arrival: Option<Instant>,
        build: impl FnOnce(&mut Vec<u8>),
    ) -> bool {
        let start = self.arena.len();
        build(&mut self.arena);
        self.spans.push(start..self.arena.len());
        self.dests.push(Some(SockaddrStorage::from(dest)));
        self.arrivals.push(arrival);
        self.spans.len() >= MAX_BATCH
    }

    /// Sends everything waiting on `socket` (non-blocking) and empties the
    /// batch. A datagram the kernel refuses is dropped and counted; the
    /// rest still go. `handed_over` gets the arrival of each forwarded
    /// packet once the kernel has taken (or refused) it.
    pub(crate) fn flush(
        &mut self,
        socket: &impl AsRawFd,
        mut handed_over: impl FnMut(Instant),
    ) -> Flushed {
        let mut done = Flushed::default();
        let mut at = 0;
        while at < self.spans.len() {
            let end = self.spans.len().min(at + MAX_BATCH);
            let iovs: Vec<[std::io::IoSlice<'_>; 1]> = self.spans[at..end]
                .iter()
                .map(|r| [std::io::IoSlice::new(&self.arena[r.clone()])])
                .collect();
            done.calls += 1;
            let res = sendmmsg(
                socket.as_raw_fd(),
                &mut self.headers,
                &iovs,
                &self.dests[at..end],
                [],
                MsgFlags::MSG_DONTWAIT,
            )
            .map(|r| r.count());
            match res {
                // Interrupted before anything went: try the same again.
                Err(Errno::EINTR) => {}
                // The first datagram was refused: drop it, go on.
                Ok(0) | Err(_) => {
                    done.dropped += 1;
                    at += 1;
                }
                Ok(n) => {
                    done.sent += n;
                    at += n;
                }
            }
        }
        self.arrivals.iter().flatten().for_each(|&a| handed_over(a));
        self.arena.clear();
        self.spans.clear();
        self.dests.clear();
        self.arrivals.clear();
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    fn receiver() -> UdpSocket {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        s
    }

    #[test]
    fn datagrams_arrive_whole_in_order_at_their_own_destinations() {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (a, b) = (receiver(), receiver());
        let mut batch = SendBatch::new();
        // More than one sendmmsg call's worth, alternating destinations.
        let n = MAX_BATCH + 7;
        for i in 0..n {
            let dest = if i % 2 == 0 { &a } else { &b };
            let arrival = (i % 3 == 0).then(Instant::now);
            let full = batch.push(dest.local_addr().unwrap(), arrival, |buf| {
                buf.extend_from_slice(&(i as u32).to_be_bytes());
                buf.extend(std::iter::repeat_n(i as u8, i));
            });
            assert_eq!(full, i + 1 >= MAX_BATCH);
        }
        assert_eq!(batch.len(), n);
        let mut handed = 0;
        let done = batch.flush(&tx, |_| handed += 1);
        assert_eq!(
            done,
            Flushed {
                sent: n,
                dropped: 0,
                calls: 2
            }
        );
        assert_eq!(handed, n.div_ceil(3), "one per forwarded packet");
        assert_eq!(batch.len(), 0);
        let mut buf = [0u8; 2048];
        for (sock, first) in [(&a, 0), (&b, 1)] {
            for i in (first..n).step_by(2) {
                let (len, from) = sock.recv_from(&mut buf).unwrap();
                assert_eq!(from, tx.local_addr().unwrap());
                assert_eq!(len, 4 + i);
                assert_eq!(u32::from_be_bytes(buf[..4].try_into().unwrap()), i as u32);
                assert!(buf[4..len].iter().all(|&x| x == i as u8));
            }
        }
    }

    #[test]
    fn a_refused_datagram_is_dropped_and_the_rest_still_go() {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx = receiver();
        let mut batch = SendBatch::new();
        let to = rx.local_addr().unwrap();
        batch.push(to, None, |b| b.extend_from_slice(b"one"));
        // Larger than any UDP datagram can be: EMSGSIZE for this one only.
        batch.push(to, None, |b| b.resize(b.len() + 70_000, 0));
        batch.push(to, None, |b| b.extend_from_slice(b"three"));
        let done = batch.flush(&tx, |_| {});
        assert_eq!((done.sent, done.dropped), (2, 1));
        let mut buf = [0u8; 64];
        let (n, _) = rx.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"one");
        let (n, _) = rx.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"three");
    }
}
