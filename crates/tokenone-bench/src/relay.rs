//! The floor: a minimal HTTP/1.1 relay (hyper server + hyper client, no parsing, no auth, no
//! accounting), run as a subprocess pinned like the gateway. What it adds over direct is the cost
//! of the extra hop and of crossing cores; what the gateway adds over it is TokenOne's own work.

use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response, Uri};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::Mutex;

type Upstream = Arc<Mutex<Option<SendRequest<Incoming>>>>;

/// Serves forever on `listen`, forwarding every request to `upstream` at `path`, one upstream
/// keep-alive connection per client connection; response bodies are streamed through.
pub async fn run(listen: SocketAddr, upstream: SocketAddr, path: &'static str) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let up: Upstream = Arc::default();
            let svc = hyper::service::service_fn(move |req| forward(req, up.clone(), upstream, path));
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn forward(
    req: Request<Incoming>,
    up: Upstream,
    upstream: SocketAddr,
    path: &'static str,
) -> anyhow::Result<Response<Incoming>> {
    let mut slot = up.lock().await;
    let sender = match slot.take() {
        Some(s) if !s.is_closed() => slot.insert(s),
        _ => {
            let stream = tokio::net::TcpStream::connect(upstream).await?;
            stream.set_nodelay(true)?;
            let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            slot.insert(tx)
        }
    };
    sender.ready().await?;
    let (mut parts, body) = req.into_parts();
    parts.uri = Uri::from_static(path);
    Ok(sender.send_request(Request::from_parts(parts, body)).await?)
}
