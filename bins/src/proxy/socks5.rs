//! The client side of SOCKS version 5 (RFC 1928): CONNECT to an IPv4
//! destination, with no authentication or with username/password
//! (RFC 1929), over any byte stream (the proxy's marked kernel socket).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, SocketAddrV4};

/// Where the SOCKS5 server is and how to log in.
#[derive(Debug, Clone)]
pub struct Socks5Config {
    /// Address of the SOCKS5 server.
    pub server: SocketAddr,
    /// Username and password (RFC 1929), each 1–255 bytes; `None` offers
    /// only "no authentication".
    pub auth: Option<(String, String)>,
}

/// Why a SOCKS5 CONNECT failed.
#[derive(Debug, thiserror::Error)]
pub enum Socks5Error {
    /// Reading from or writing to the server failed (including timeouts).
    #[error("SOCKS5 server: {0}")]
    Io(#[from] io::Error),
    /// The server rejected every method we offered (RFC 1928 §3, 0xFF);
    /// names what we offered.
    #[error("SOCKS5 server accepts none of our methods ({0})")]
    NoAcceptableMethod(&'static str),
    /// Username/password login failed with this non-zero status (RFC 1929 §2).
    #[error("SOCKS5 server refused the username/password (status {0})")]
    AuthFailed(u8),
    /// The server answered our CONNECT with a failure reply.
    #[error("SOCKS5 server could not connect to {target}: {}", reply_meaning(*.code))]
    Refused {
        /// The destination we asked for.
        target: SocketAddrV4,
        /// The reply code REP (RFC 1928 §6), e.g. 5 for connection refused.
        code: u8,
    },
    /// The server broke the protocol; says how.
    #[error("SOCKS5 server sent a malformed reply: {0}")]
    BadReply(&'static str),
}

impl Socks5Error {
    /// True when the destination itself refused or could not be reached
    /// (as opposed to trouble with the SOCKS server).
    pub fn is_destination(&self) -> bool {
        matches!(self, Socks5Error::Refused { .. })
    }
}

const VERSION: u8 = 5;
const NO_AUTH: u8 = 0;
const USER_PASS: u8 = 2;
const NO_ACCEPTABLE: u8 = 0xff;
const CMD_CONNECT: u8 = 1;
const ATYP_IPV4: u8 = 1;
const ATYP_DOMAIN: u8 = 3;
const ATYP_IPV6: u8 = 4;

/// RFC 1928 §6: what a reply code means.
pub fn reply_meaning(code: u8) -> &'static str {
    match code {
        1 => "general SOCKS server failure",
        2 => "connection not allowed by ruleset",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unassigned reply code",
    }
}

/// Asks the server at the other end of `s` to CONNECT to `target`; on
/// success `s` carries the connection's bytes from then on.
pub fn connect<S: Read + Write>(
    s: &mut S,
    cfg: &Socks5Config,
    target: SocketAddrV4,
) -> Result<(), Socks5Error> {
    // §3: version, then the methods we offer.
    let offer: &[u8] = match cfg.auth {
        Some(_) => &[VERSION, 2, NO_AUTH, USER_PASS],
        None => &[VERSION, 1, NO_AUTH],
    };
    s.write_all(offer)?;
    let mut choice = [0u8; 2];
    s.read_exact(&mut choice)?;
    if choice[0] != VERSION {
        return Err(Socks5Error::BadReply("version is not 5"));
    }
    match (choice[1], &cfg.auth) {
        (NO_AUTH, _) => {}
        (USER_PASS, Some((user, pass))) => login(s, user, pass)?,
        (NO_ACCEPTABLE, None) => return Err(Socks5Error::NoAcceptableMethod("no authentication")),
        (NO_ACCEPTABLE, Some(_)) => {
            return Err(Socks5Error::NoAcceptableMethod(
                "no authentication, username/password",
            ))
        }
        _ => return Err(Socks5Error::BadReply("a method we did not offer")),
    }
    // §4: the request.
    let mut req = [0u8; 10];
    req[..4].copy_from_slice(&[VERSION, CMD_CONNECT, 0, ATYP_IPV4]);
    req[4..8].copy_from_slice(&target.ip().octets());
    req[8..].copy_from_slice(&target.port().to_be_bytes());
    s.write_all(&req)?;
    // §6: the reply, whose bound address we read past.
    let mut head = [0u8; 4];
    s.read_exact(&mut head)?;
    if head[0] != VERSION {
        return Err(Socks5Error::BadReply("version is not 5"));
    }
    let addr_len = match head[3] {
        ATYP_IPV4 => 4,
        ATYP_IPV6 => 16,
        ATYP_DOMAIN => {
            let mut n = [0u8; 1];
            s.read_exact(&mut n)?;
            usize::from(n[0])
        }
        _ => return Err(Socks5Error::BadReply("unknown address type")),
    };
    let mut bound = [0u8; 255 + 2];
    s.read_exact(&mut bound[..addr_len + 2])?;
    if head[1] != 0 {
        return Err(Socks5Error::Refused {
            target,
            code: head[1],
        });
    }
    Ok(())
}

/// RFC 1929 §2: username/password sub-negotiation.
fn login<S: Read + Write>(s: &mut S, user: &str, pass: &str) -> Result<(), Socks5Error> {
    let (u, p) = (user.as_bytes(), pass.as_bytes());
    let (Ok(ul), Ok(pl)) = (u8::try_from(u.len()), u8::try_from(p.len())) else {
        return Err(Socks5Error::AuthFailed(0xff));
    };
    let mut msg = Vec::with_capacity(3 + u.len() + p.len());
    msg.extend_from_slice(&[1, ul]);
    msg.extend_from_slice(u);
    msg.push(pl);
    msg.extend_from_slice(p);
    s.write_all(&msg)?;
    let mut status = [0u8; 2];
    s.read_exact(&mut status)?;
    if status[1] != 0 {
        return Err(Socks5Error::AuthFailed(status[1]));
    }
    Ok(())
}

/// Checks a username or password's length (RFC 1929: 1–255 bytes).
pub fn check_credential(what: &str, v: &str) -> Result<(), String> {
    if v.is_empty() || v.len() > 255 {
        return Err(format!(
            "{what} must be 1 to 255 bytes (RFC 1929), not {}",
            v.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
