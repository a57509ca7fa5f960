//! The receive filter: a tiny classic-BPF assembler and the program the
//! socket runs on every frame before it reaches us (or the ring).

use std::net::Ipv4Addr;

use crate::ethernet::{MacAddr, ETHERTYPE_ARP, ETHERTYPE_IPV4, HEADER_LEN};

/// A tiny classic-BPF assembler with forward labels, so the filter below
/// reads as a program rather than as jump offsets.
pub(super) mod bpf {
    /// BPF_LD | BPF_W | BPF_ABS
    pub const LD_W_ABS: u16 = 0x20;
    /// BPF_LD | BPF_H | BPF_ABS
    pub const LD_H_ABS: u16 = 0x28;
    /// BPF_JMP | BPF_JEQ | BPF_K
    pub const JEQ_K: u16 = 0x15;
    /// BPF_RET | BPF_K
    pub const RET_K: u16 = 0x06;

    #[derive(Clone, Copy)]
    pub enum To {
        Next,
        L(usize),
    }

    #[derive(Default)]
    pub struct Asm {
        ins: Vec<(u16, u32, To, To)>,
        labels: Vec<Option<usize>>,
    }

    impl Asm {
        pub fn label(&mut self) -> usize {
            self.labels.push(None);
            self.labels.len() - 1
        }
        pub fn bind(&mut self, l: usize) {
            self.labels[l] = Some(self.ins.len());
        }
        pub fn stmt(&mut self, code: u16, k: u32) {
            self.ins.push((code, k, To::Next, To::Next));
        }
        pub fn jeq(&mut self, k: u32, jt: To, jf: To) {
            self.ins.push((JEQ_K, k, jt, jf));
        }
        pub fn finish(self) -> Vec<libc::sock_filter> {
            let off = |at: usize, to: To| -> u8 {
                match to {
                    To::Next => 0,
                    To::L(l) => {
                        let target = self.labels[l].expect("BPF label bound");
                        u8::try_from(target - at - 1).expect("BPF jump within 255")
                    }
                }
            };
            self.ins
                .iter()
                .enumerate()
                .map(|(at, &(code, k, jt, jf))| libc::sock_filter {
                    code,
                    jt: off(at, jt),
                    jf: off(at, jf),
                    k,
                })
                .collect()
        }
    }
}

/// Offsets in the frame the filter reads (Ethernet header, then IPv4).
const IPV4_DST_IN_FRAME: u32 = (HEADER_LEN + 16) as u32;

/// The receive filter: to our MAC or broadcast, not from our MAC, and
/// either ARP or IPv4 to `addr`.
pub(crate) fn frame_filter(mac: MacAddr, addr: Ipv4Addr) -> Vec<libc::sock_filter> {
    use bpf::{To, LD_H_ABS, LD_W_ABS, RET_K};
    let (hi, lo) = mac.bpf_words();
    let mut a = bpf::Asm::default();
    let (accept, reject, bcast, check_src, check_type) =
        (a.label(), a.label(), a.label(), a.label(), a.label());
    let check_lo = a.label();
    a.stmt(LD_W_ABS, 0);
    a.jeq(hi, To::Next, To::L(bcast));
    a.stmt(LD_H_ABS, 4);
    a.jeq(lo, To::L(check_src), To::L(reject));
    a.bind(bcast);
    a.jeq(u32::MAX, To::Next, To::L(reject));
    a.stmt(LD_H_ABS, 4);
    a.jeq(0xffff, To::L(check_src), To::L(reject));
    a.bind(check_src);
    a.stmt(LD_W_ABS, 6);
    a.jeq(hi, To::L(check_lo), To::L(check_type));
    a.bind(check_lo);
    a.stmt(LD_H_ABS, 10);
    a.jeq(lo, To::L(reject), To::L(check_type));
    a.bind(check_type);
    a.stmt(LD_H_ABS, 12);
    a.jeq(u32::from(ETHERTYPE_ARP), To::L(accept), To::Next);
    a.jeq(u32::from(ETHERTYPE_IPV4), To::Next, To::L(reject));
    a.stmt(LD_W_ABS, IPV4_DST_IN_FRAME);
    a.jeq(u32::from(addr), To::L(accept), To::L(reject));
    a.bind(accept);
    a.stmt(RET_K, u32::MAX);
    a.bind(reject);
    a.stmt(RET_K, 0);
    a.finish()
}
