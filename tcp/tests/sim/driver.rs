//! Runs one scenario: two stacks joined by two [`SimLink`]s, a client on A that
//! connects to a server on B, and on each side an application that sends a
//! seeded byte stream, half-closes, reads the peer's stream to EOF (checking
//! every byte as it lands), then closes its handle.
//!
//! The clock only jumps: to the next packet arrival or the earliest stack
//! timer, whichever comes first. A scenario succeeds when both streams arrived
//! byte-exact, both sides saw EOF, and — after TIME-WAIT — neither stack holds
//! a connection.

use std::collections::VecDeque;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use super::host::{Host, HostConfig};
use ustack_tcp::{
    ConnId, Instant, PostRefused, Refusal, State, TcpConfig, TcpError, TcpStats, XorShiftRng,
};

use super::link::{Fate, LinkConfig, LinkStats, SimLink};
use super::rng::{mix64, Pattern, SimRng};

pub const ADDR_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const ADDR_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
pub const SERVER_PORT: u16 = 80;
pub const MTU: usize = 1500;

/// Everything that defines one run. Two equal scenarios run identically.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub seed: u64,
    pub a_to_b: LinkConfig,
    pub b_to_a: LinkConfig,
    /// Bytes the client (A) sends to the server (B), and back.
    pub bytes_a_to_b: u64,
    pub bytes_b_to_a: u64,
    /// Per-connection settings of both stacks.
    pub tcp: TcpConfig,
    /// Virtual time the whole scenario (close and TIME-WAIT included) may take.
    pub max_time: Duration,
    /// Virtual time without any byte, EOF or close reaching an application
    /// (or a connection freed) after which the run counts as stuck.
    pub stall_limit: Duration,
    pub max_iterations: u64,
    /// Packet events kept for the failure report.
    pub trace_len: usize,
    /// The client's and the server's application receive into posted
    /// buffers (`Tcp::post_recv`) of this size, this many at a time,
    /// instead of reading the receive ring.
    pub posted_a: Option<(usize, usize)>,
    pub posted_b: Option<(usize, usize)>,
}

impl Scenario {
    /// Perfect links, nothing to send, TIME-WAIT shortened to 2 s.
    pub fn new(seed: u64) -> Scenario {
        let tcp = TcpConfig {
            time_wait: Duration::from_secs(2),
            ..TcpConfig::default()
        };
        // Longer than the engine needs to give up on its own (data_retries
        // RTOs at rto_max), so a stall here is one the engine cannot see.
        let stall_limit = tcp.rto_max * (tcp.data_retries + 2);
        Scenario {
            seed,
            a_to_b: LinkConfig::default(),
            b_to_a: LinkConfig::default(),
            bytes_a_to_b: 0,
            bytes_b_to_a: 0,
            tcp,
            max_time: Duration::from_secs(24 * 3600),
            stall_limit,
            max_iterations: 5_000_000,
            trace_len: 48,
            posted_a: None,
            posted_b: None,
        }
    }

    /// The same impairments both ways.
    pub fn symmetric(mut self, link: LinkConfig) -> Scenario {
        self.a_to_b = link.clone();
        self.b_to_a = link;
        self
    }
}

/// What a successful run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub start: Instant,
    /// When the last byte of each stream was read by its receiver.
    pub a_to_b_done: Instant,
    pub b_to_a_done: Instant,
    /// When both stacks were empty again.
    pub finished: Instant,
    pub links: [LinkStats; 2],
    pub stacks: [TcpStats; 2],
    pub iterations: u64,
}

impl Outcome {
    /// Bytes per virtual second of the A-to-B stream, from `connect` to its last byte read.
    pub fn goodput_a_to_b(&self, bytes: u64) -> f64 {
        let secs = (self.a_to_b_done - self.start).as_secs_f64();
        bytes as f64 / secs.max(1e-6)
    }

    pub fn corrupted_delivered(&self) -> u64 {
        self.links[0].corrupted_delivered + self.links[1].corrupted_delivered
    }
}

/// A failed run: what went wrong, where, and the last packets on the wire.
#[derive(Debug, Clone)]
pub struct SimFailure {
    pub seed: u64,
    pub at: Instant,
    pub reason: String,
    pub state: String,
    pub trace: Vec<String>,
}

impl fmt::Display for SimFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {} failed at t={:?}: {}",
            self.seed, self.at, self.reason
        )?;
        writeln!(f, "{}", self.state)?;
        writeln!(f, "last {} packet events:", self.trace.len())?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    AtoB,
    BtoA,
}

#[derive(Debug, Clone, Copy)]
enum Event {
    Sent(Fate),
    Arrived { corrupted: bool },
}

#[derive(Debug, Clone, Copy)]
struct TraceEntry {
    at: Instant,
    dir: Dir,
    event: Event,
    seq: u32,
    ack: u32,
    flags: u8,
    len: usize,
    window: u16,
}

/// The last `cap` packet events, with just enough of each header to read.
struct Trace {
    cap: usize,
    entries: VecDeque<TraceEntry>,
}

impl Trace {
    fn record(&mut self, at: Instant, dir: Dir, event: Event, pkt: &[u8]) {
        if self.cap == 0 {
            return;
        }
        if self.entries.len() == self.cap {
            self.entries.pop_front();
        }
        let ihl = usize::from(pkt.first().map_or(5, |b| b & 0x0f)) * 4;
        let tcp = pkt.get(ihl..).filter(|t| t.len() >= 20).unwrap_or(&[]);
        let be32 = |r: std::ops::Range<usize>| {
            tcp.get(r)
                .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        let doff = tcp.get(12).map_or(20, |b| usize::from(b >> 4) * 4);
        self.entries.push_back(TraceEntry {
            at,
            dir,
            event,
            seq: be32(4..8),
            ack: be32(8..12),
            flags: tcp.get(13).copied().unwrap_or(0),
            len: pkt.len().saturating_sub(ihl + doff),
            window: tcp
                .get(14..16)
                .map_or(0, |b| u16::from_be_bytes([b[0], b[1]])),
        });
    }

    fn lines(&self) -> Vec<String> {
        self.entries.iter().map(|e| e.to_string()).collect()
    }
}

impl fmt::Display for TraceEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = match self.dir {
            Dir::AtoB => "A>B",
            Dir::BtoA => "B>A",
        };
        let flags: String = [
            (0x02, 'S'),
            (0x10, 'A'),
            (0x08, 'P'),
            (0x01, 'F'),
            (0x04, 'R'),
        ]
        .iter()
        .filter(|(bit, _)| self.flags & bit != 0)
        .map(|(_, c)| *c)
        .collect();
        let what = match self.event {
            Event::Sent(Fate::TailDrop) => "sent: tail-dropped".to_string(),
            Event::Sent(Fate::LostRandom) => "sent: lost".to_string(),
            Event::Sent(Fate::LostBurst) => "sent: lost in burst".to_string(),
            Event::Sent(Fate::Queued {
                at,
                corrupted,
                reordered,
                duplicated,
            }) => format!(
                "sent: arrives {at:?}{}{}{}",
                if corrupted { " corrupted" } else { "" },
                if reordered { " held back" } else { "" },
                if duplicated { " +duplicate" } else { "" },
            ),
            Event::Arrived { corrupted: true } => "arrived (corrupted)".to_string(),
            Event::Arrived { corrupted: false } => "arrived".to_string(),
        };
        write!(
            f,
            "{:?} {dir} [{flags:<3}] seq={} ack={} len={} win={} {what}",
            self.at, self.seq, self.ack, self.len, self.window
        )
    }
}

/// One side's application.
struct App {
    name: &'static str,
    conn: Option<ConnId>,
    tx: Pattern,
    tx_total: u64,
    tx_done: u64,
    rx: Pattern,
    rx_total: u64,
    rx_done: u64,
    rx_done_at: Option<Instant>,
    shut: bool,
    eof: bool,
    closed: bool,
    /// Posted-buffer mode: size and count of the buffers kept posted.
    posted: Option<(usize, usize)>,
    /// Buffers the stack holds for us now, and ones handed back.
    posted_now: usize,
    spare: Vec<Box<[u8]>>,
}

impl App {
    fn new(name: &'static str, tx: Pattern, tx_total: u64, rx: Pattern, rx_total: u64) -> App {
        App {
            name,
            conn: None,
            tx,
            tx_total,
            tx_done: 0,
            rx,
            rx_total,
            rx_done: 0,
            rx_done_at: None,
            shut: false,
            eof: false,
            closed: false,
            posted: None,
            posted_now: 0,
            spare: Vec::new(),
        }
    }

    /// Sends what fits, half-closes when all is queued, reads and checks what
    /// arrived, closes after EOF.
    fn step(&mut self, st: &mut Host, now: Instant) -> Result<(), String> {
        let Some(id) = self.conn else { return Ok(()) };
        if self.closed {
            return Ok(());
        }
        let name = self.name;
        if let Ok(Some(e)) = st.error(id) {
            return Err(format!("{name}: connection failed: {e}"));
        }
        while self.tx_done < self.tx_total {
            let (pat, off) = (self.tx, self.tx_done);
            let left = (self.tx_total - off) as usize;
            let r = st.send_with(id, |space| {
                let n = space.len().min(left);
                pat.fill(off, &mut space[..n]);
                n
            });
            match r {
                Ok(n) => self.tx_done += n as u64,
                Err(TcpError::WouldBlock) => break,
                Err(e) => {
                    return Err(format!(
                        "{name}: send failed after {off} of {} bytes: {e}",
                        self.tx_total
                    ))
                }
            }
        }
        // A shutdown in SYN-SENT would abandon the connection: wait for the handshake.
        if !self.shut && self.tx_done == self.tx_total && st.state(id) != Ok(State::SynSent) {
            st.shutdown(id, now)
                .map_err(|e| format!("{name}: shutdown failed: {e}"))?;
            self.shut = true;
        }
        match self.posted {
            Some((size, count)) => self.recv_posted(st, now, size, count)?,
            None => self.recv_ring(st, now)?,
        }
        if self.eof && self.rx_done != self.rx_total {
            return Err(format!(
                "{name}: EOF after {} of {} bytes",
                self.rx_done, self.rx_total
            ));
        }
        if self.shut && self.eof {
            st.close(id, now)
                .map_err(|e| format!("{name}: close failed: {e}"))?;
            self.closed = true;
        }
        Ok(())
    }

    /// Reads from the receive ring in place until nothing is left.
    fn recv_ring(&mut self, st: &mut Host, now: Instant) -> Result<(), String> {
        let Some(id) = self.conn else { return Ok(()) };
        while !self.eof {
            let (pat, off) = (self.rx, self.rx_done);
            let mut mismatch = None;
            let r = st.recv_with(id, |data| {
                mismatch = pat.first_mismatch(off, data).map(|i| (i, data[i]));
                data.len()
            });
            match r {
                Ok(0) => {
                    if st.at_eof(id) == Ok(true) {
                        self.eof = true;
                        self.rx_done_at.get_or_insert(now);
                    }
                    break;
                }
                Ok(n) => self.received(now, n, mismatch)?,
                Err(TcpError::WouldBlock) => break,
                Err(e) => return Err(self.recv_failed(e)),
            }
        }
        Ok(())
    }

    /// Keeps `count` buffers of `size` posted and checks each one handed
    /// back, until the stream ends.
    fn recv_posted(
        &mut self,
        st: &mut Host,
        now: Instant,
        size: usize,
        count: usize,
    ) -> Result<(), String> {
        let Some(id) = self.conn else { return Ok(()) };
        while !self.eof {
            while self.posted_now < count {
                let buf = self
                    .spare
                    .pop()
                    .unwrap_or_else(|| vec![0; size].into_boxed_slice());
                match st.post_recv(id, buf) {
                    Ok(()) => self.posted_now += 1,
                    Err(PostRefused {
                        buf,
                        reason: Refusal::Ended,
                    }) => {
                        self.spare.push(buf);
                        break;
                    }
                    Err(r) => {
                        return Err(format!("{}: post_recv refused: {}", self.name, r.reason))
                    }
                }
            }
            match st.take_recv(id) {
                Ok(f) if f.len > 0 => {
                    self.posted_now -= 1;
                    let off = self.rx_done;
                    let mismatch = self.rx.first_mismatch(off, f.data()).map(|i| (i, f.buf[i]));
                    self.received(now, f.len, mismatch)?;
                    self.spare.push(f.buf);
                }
                // End of stream: the unused buffers come back, then an empty one.
                Ok(f) if !f.buf.is_empty() => {
                    self.posted_now -= 1;
                    self.spare.push(f.buf);
                }
                Ok(_) => {
                    if self.posted_now != 0 {
                        return Err(format!(
                            "{}: EOF with {} buffers still posted",
                            self.name, self.posted_now
                        ));
                    }
                    self.eof = true;
                    self.rx_done_at.get_or_insert(now);
                }
                Err(TcpError::WouldBlock) => break,
                Err(e) => return Err(self.recv_failed(e)),
            }
        }
        Ok(())
    }

    /// `n` more bytes arrived; `mismatch` is the first wrong one among them.
    fn received(
        &mut self,
        now: Instant,
        n: usize,
        mismatch: Option<(usize, u8)>,
    ) -> Result<(), String> {
        let (name, off) = (self.name, self.rx_done);
        if let Some((i, got)) = mismatch {
            let mut want = [0u8];
            self.rx.fill(off + i as u64, &mut want);
            return Err(format!(
                "{name}: received byte {} is {got:#04x}, expected {:#04x}: data corrupted",
                off + i as u64,
                want[0]
            ));
        }
        self.rx_done += n as u64;
        if self.rx_done > self.rx_total {
            return Err(format!(
                "{name}: received {} bytes, more than the {} the peer sent",
                self.rx_done, self.rx_total
            ));
        }
        if self.rx_done == self.rx_total {
            self.rx_done_at = Some(now);
        }
        Ok(())
    }

    fn recv_failed(&self, e: TcpError) -> String {
        format!(
            "{}: receive failed after {} of {} bytes: {e}",
            self.name, self.rx_done, self.rx_total
        )
    }

    /// Grows with every step the application makes.
    fn progress(&self) -> u64 {
        self.rx_done + u64::from(self.eof) + u64::from(self.closed) + u64::from(self.conn.is_some())
    }

    fn describe(&self, st: &Host) -> String {
        let state = self.conn.map(|id| {
            if self.closed {
                "handle closed".to_string()
            } else {
                format!("{:?}", st.state(id))
            }
        });
        format!(
            "{}: sent {}/{}, received {}/{}, shut={} eof={} conn={} stack conns={}",
            self.name,
            self.tx_done,
            self.tx_total,
            self.rx_done,
            self.rx_total,
            self.shut,
            self.eof,
            state.unwrap_or_else(|| "not yet accepted".to_string()),
            st.connection_count()
        )
    }
}

/// Packets a stack dropped as malformed: where every corrupted packet must end.
fn rejected(st: &Host) -> u64 {
    let (s, ip) = (st.stats(), st.ip_stats());
    ip.rx_bad_header
        + ip.rx_bad_checksum
        + ip.rx_fragments
        + ip.rx_not_for_us
        + ip.rx_unknown_protocol
        + ip.icmp_rx_errors
        + s.tcp_bad_header
        + s.tcp_bad_checksum
}

/// Moves due packets from `link` into `st`; replies go into `back`.
fn deliver(
    now: Instant,
    dir: Dir,
    link: &mut SimLink,
    st: &mut Host,
    back: &mut SimLink,
    trace: &mut Trace,
) -> Result<(), String> {
    let back_dir = match dir {
        Dir::AtoB => Dir::BtoA,
        Dir::BtoA => Dir::AtoB,
    };
    while let Some(d) = link.pop_due(now) {
        trace.record(
            now,
            dir,
            Event::Arrived {
                corrupted: d.corrupted,
            },
            &d.packet,
        );
        let before = rejected(st);
        st.handle_packet(now, &d.packet, &mut |p| {
            let fate = back.send(now, p);
            trace.record(now, back_dir, Event::Sent(fate), p);
        });
        if d.corrupted && rejected(st) == before {
            return Err(format!(
                "a corrupted packet ({dir:?}, {} bytes) was accepted: the checksums missed a one-bit error",
                d.packet.len()
            ));
        }
        link.recycle(d.packet);
    }
    Ok(())
}

/// Runs the scenario to its end.
pub fn run(sc: &Scenario) -> Result<Outcome, SimFailure> {
    let mut ca = HostConfig::new(ADDR_A, MTU);
    ca.tcp = sc.tcp.clone();
    let mut cb = HostConfig::new(ADDR_B, MTU);
    cb.tcp = sc.tcp.clone();
    let mut a = Host::new(ca, Box::new(XorShiftRng::new(mix64(sc.seed ^ 0xA))));
    let mut b = Host::new(cb, Box::new(XorShiftRng::new(mix64(sc.seed ^ 0xB))));
    let mut ab = SimLink::new(sc.a_to_b.clone(), SimRng::derive(sc.seed, 0xAB));
    let mut ba = SimLink::new(sc.b_to_a.clone(), SimRng::derive(sc.seed, 0xBA));
    let mut trace = Trace {
        cap: sc.trace_len,
        entries: VecDeque::new(),
    };
    let up = Pattern(mix64(sc.seed ^ 0x5550));
    let down = Pattern(mix64(sc.seed ^ 0xD0));
    let mut app_a = App::new("A (client)", up, sc.bytes_a_to_b, down, sc.bytes_b_to_a);
    let mut app_b = App::new("B (server)", down, sc.bytes_b_to_a, up, sc.bytes_a_to_b);
    app_a.posted = sc.posted_a;
    app_b.posted = sc.posted_b;

    let start = Instant::from_millis(1_000);
    let mut now = start;
    let mut iterations = 0u64;
    let mut stalled = 0u32;
    let mut last_progress = (now, 0u64);
    let mut packets_at_progress = 0u64;

    let result = (|| -> Result<(), String> {
        let listener = b
            .listen(SERVER_PORT, 4)
            .map_err(|e| format!("listen: {e}"))?;
        app_a.conn = Some(
            a.connect(now, SocketAddrV4::new(ADDR_B, SERVER_PORT), None)
                .map_err(|e| format!("connect: {e}"))?,
        );
        loop {
            iterations += 1;
            if iterations > sc.max_iterations {
                return Err(format!("gave up after {} iterations", sc.max_iterations));
            }
            deliver(now, Dir::AtoB, &mut ab, &mut b, &mut ba, &mut trace)?;
            deliver(now, Dir::BtoA, &mut ba, &mut a, &mut ab, &mut trace)?;
            if app_b.conn.is_none() {
                app_b.conn = b.accept(listener);
            }
            while a.poll_ready().is_some() {}
            while b.poll_ready().is_some() {}
            app_a.step(&mut a, now)?;
            app_b.step(&mut b, now)?;
            a.poll(now, &mut |p| {
                let fate = ab.send(now, p);
                trace.record(now, Dir::AtoB, Event::Sent(fate), p);
            });
            b.poll(now, &mut |p| {
                let fate = ba.send(now, p);
                trace.record(now, Dir::BtoA, Event::Sent(fate), p);
            });

            let progress = app_a.progress()
                + app_b.progress()
                + (a.connection_count() + b.connection_count()) as u64;
            let packets = ab.stats().offered + ba.stats().offered;
            if progress != last_progress.1 {
                last_progress = (now, progress);
                packets_at_progress = packets;
            } else if packets - packets_at_progress > 100_000 {
                return Err(format!(
                    "packet storm: {} packets since the last progress at t={:?}",
                    packets - packets_at_progress,
                    last_progress.0
                ));
            } else if now - last_progress.0 > sc.stall_limit {
                return Err(format!(
                    "stuck: no progress since t={:?} ({:?} of virtual time)",
                    last_progress.0, sc.stall_limit
                ));
            }
            let apps_done = app_a.closed && app_b.closed;
            if apps_done && a.connection_count() == 0 && b.connection_count() == 0 {
                return Ok(());
            }
            let next = [
                ab.next_event_time(),
                ba.next_event_time(),
                a.poll_at(),
                b.poll_at(),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next else {
                // A timer that just failed the connection leaves nothing to wait for.
                app_a.step(&mut a, now)?;
                app_b.step(&mut b, now)?;
                // One side gave up (possibly as an orphan, after its app had
                // closed the handle); the other then rightly waits forever.
                if a.stats().tcp_timeouts + b.stats().tcp_timeouts > 0 {
                    return Err("peer gave up: connection timed out on one side".to_string());
                }
                return Err("deadlock: nothing in flight and no timer armed".to_string());
            };
            if next <= now {
                stalled += 1;
                if stalled > 10_000 {
                    return Err("livelock: 10000 iterations without the clock moving".into());
                }
            } else {
                stalled = 0;
                now = next;
            }
            if now - start > sc.max_time {
                return Err(format!(
                    "not finished after {:?} of virtual time",
                    sc.max_time
                ));
            }
        }
    })();

    match result {
        Ok(()) => Ok(Outcome {
            start,
            a_to_b_done: app_b.rx_done_at.unwrap_or(start),
            b_to_a_done: app_a.rx_done_at.unwrap_or(start),
            finished: now,
            links: [ab.stats(), ba.stats()],
            stacks: [a.stats().clone(), b.stats().clone()],
            iterations,
        }),
        Err(reason) => Err(SimFailure {
            seed: sc.seed,
            at: now,
            reason,
            state: format!(
                "{}\n{}\nlink A>B: {:?}\nlink B>A: {:?}\nscenario: {sc:?}",
                app_a.describe(&a),
                app_b.describe(&b),
                ab.stats(),
                ba.stats()
            ),
            trace: trace.lines(),
        }),
    }
}
