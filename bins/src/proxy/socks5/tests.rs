use std::io::Cursor;
use std::net::{Ipv4Addr, SocketAddr};

use super::*;

/// A server that answers from a script and records what it was sent.
struct Scripted {
    replies: Cursor<Vec<u8>>,
    sent: Vec<u8>,
}

impl Read for Scripted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.replies.read(buf)
    }
}

impl Write for Scripted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sent.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn run(auth: Option<(&str, &str)>, replies: &[u8]) -> (Result<(), Socks5Error>, Vec<u8>) {
    let cfg = Socks5Config {
        server: SocketAddr::from(([127, 0, 0, 1], 1080)),
        auth: auth.map(|(u, p)| (u.to_string(), p.to_string())),
    };
    let mut s = Scripted {
        replies: Cursor::new(replies.to_vec()),
        sent: Vec::new(),
    };
    let target = SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 2), 8000);
    let r = connect(&mut s, &cfg, target);
    (r, s.sent)
}

const OK_REPLY: [u8; 10] = [5, 0, 0, 1, 10, 77, 0, 9, 0x9c, 0x40];

#[test]
fn no_auth_connect_sends_rfc1928_bytes() {
    let mut replies = vec![5, 0];
    replies.extend_from_slice(&OK_REPLY);
    let (r, sent) = run(None, &replies);
    r.expect("connect");
    assert_eq!(
        sent,
        [5, 1, 0, 5, 1, 0, 1, 10, 77, 0, 2, 0x1f, 0x40],
        "greeting, then CONNECT 10.77.0.2:8000"
    );
}

#[test]
fn username_password_is_sent_when_the_server_asks() {
    let mut replies = vec![5, 2, 1, 0];
    // A reply with a domain-name bound address is read past whole.
    replies.extend_from_slice(&[5, 0, 0, 3, 4, b'h', b'o', b's', b't', 0, 80]);
    let (r, sent) = run(Some(("al", "pw!")), &replies);
    r.expect("connect");
    assert_eq!(&sent[..4], &[5, 2, 0, 2]);
    assert_eq!(&sent[4..12], &[1, 2, b'a', b'l', 3, b'p', b'w', b'!']);
    assert_eq!(&sent[12..16], &[5, 1, 0, 1]);
}

#[test]
fn failures_say_what_went_wrong() {
    let (r, _) = run(Some(("u", "p")), &[5, 2, 1, 1]);
    assert!(matches!(r, Err(Socks5Error::AuthFailed(1))), "{r:?}");
    let (r, _) = run(None, &[5, 0xff]);
    assert!(
        matches!(r, Err(Socks5Error::NoAcceptableMethod(_))),
        "{r:?}"
    );
    let (r, _) = run(None, &[5, 0, 5, 5, 0, 1, 0, 0, 0, 0, 0, 0]);
    let e = r.unwrap_err();
    assert!(e.is_destination());
    assert!(e.to_string().contains("connection refused"), "{e}");
    let (r, _) = run(None, &[4, 0]);
    assert!(matches!(r, Err(Socks5Error::BadReply(_))), "{r:?}");
    // A server that hangs up mid-reply.
    let (r, _) = run(None, &[5, 0, 5]);
    assert!(matches!(r, Err(Socks5Error::Io(_))), "{r:?}");
    assert!(check_credential("--socks5-user", "").is_err());
    assert!(check_credential("--socks5-user", &"x".repeat(256)).is_err());
}
