//! A hyper 1.x HTTP/1.1 server on ustack over a TUN device, through the
//! tokio sockets and `hyper_util::rt::TokioIo`. As root:
//! `cargo run --example hyper_server`, then `curl http://10.0.0.2/` (a
//! greeting) or `curl --data-binary @FILE http://10.0.0.2/` (the body's
//! length in bytes).

use std::convert::Infallible;
use std::net::Ipv4Addr;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use ustack::socket::{tokio::TcpListener, NetStack};
use ustack_ipv4::Ipv4Subnet;
use ustack_link::{TunConfig, TunLink};

/// `GET` anything: a greeting; `POST` anything: how many bytes came.
async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let text = if req.method() == Method::POST {
        let body = req.into_body().collect().await?.to_bytes();
        format!("{}\n", body.len())
    } else {
        format!("Hello from hyper on ustack: {}\n", req.uri().path())
    };
    Ok(Response::new(Full::new(Bytes::from(text))))
}

#[tokio::main]
pub async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tun = TunConfig {
        name: "tun0".into(),
        host_addr: Ipv4Addr::new(10, 0, 0, 1),
        prefix_len: 24,
        mtu: 1500,
        offload: true,
    };
    let subnet = Ipv4Subnet::new(Ipv4Addr::new(10, 0, 0, 2), 24).ok_or("bad prefix")?;
    let stack = NetStack::spawn(TunLink::create(&tun)?, subnet, Default::default())?;
    let listener = TcpListener::bind(&stack, 80)?;
    println!("listening on http://10.0.0.2/");
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let service = hyper::service::service_fn(handle);
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                eprintln!("connection: {e}");
            }
            Ok::<(), Infallible>(())
        });
    }
}
