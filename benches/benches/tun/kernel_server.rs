//! The ceiling: the kernel's own TCP serving the same HTTP (the same
//! [`HttpConn`] per connection) over blocking `std::net` sockets, to a kernel
//! client across a veth pair. A fixed pool of threads each accept and serve
//! one connection at a time, so no thread is spawned per connection. Run as a
//! child process of the bench, inside the server's namespace.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;

use ustack_http::{HttpConfig, HttpConn};

/// More than the clients' 32 concurrent connections.
const WORKERS: usize = 64;
const BUF: usize = 256 * 1024;

/// Serves on `addr` until killed.
pub fn serve(addr: SocketAddr) -> Result<(), String> {
    let listener = Arc::new(TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?);
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let listener = Arc::clone(&listener);
            std::thread::spawn(move || {
                let config = HttpConfig::default();
                let (mut inbuf, mut outbuf) = (vec![0u8; BUF], vec![0u8; BUF]);
                loop {
                    let Ok((stream, _)) = listener.accept() else {
                        continue;
                    };
                    // Errors end this connection only (a client reset it).
                    let _ = serve_conn(stream, &config, &mut inbuf, &mut outbuf);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    Ok(())
}

fn serve_conn(
    mut s: TcpStream,
    config: &HttpConfig,
    inbuf: &mut [u8],
    outbuf: &mut [u8],
) -> std::io::Result<()> {
    let mut http = HttpConn::new(config);
    // Received bytes not yet taken by `http`: inbuf[start..end].
    let (mut start, mut end) = (0, 0);
    let mut eof = false;
    loop {
        loop {
            let n = http.poll_send(outbuf);
            if n == 0 {
                break;
            }
            s.write_all(&outbuf[..n])?;
        }
        if http.wants_close() {
            return Ok(());
        }
        if !http.wants_recv() {
            // Output is drained, so `http` wants neither input nor to close:
            // cannot happen, but never spin on it.
            return Ok(());
        }
        if start < end {
            let n = http.on_recv(&inbuf[start..end]);
            start += n;
            if n > 0 {
                continue;
            }
        }
        if eof {
            http.on_eof();
            eof = false;
            continue;
        }
        if start == end {
            start = 0;
            end = 0;
        } else if end == inbuf.len() {
            inbuf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        let n = s.read(&mut inbuf[end..])?;
        if n == 0 {
            eof = true;
        }
        end += n;
    }
}
