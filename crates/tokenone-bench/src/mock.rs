//! A zero-delay mock OpenAI upstream: `POST /v1/chat/completions` answers at once with a fixed
//! small completion (with usage), or with `"stream": true` a short SSE stream: a role chunk, a few
//! content chunks, the finish chunk, the usage-only chunk and `data: [DONE]`.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// A response body made of ready frames; a single frame gets a `Content-Length`, several are
/// sent chunked, one frame per chunk.
pub struct Chunks {
    frames: VecDeque<Bytes>,
    exact: Option<u64>,
}

impl Chunks {
    fn new(frames: &[Bytes]) -> Chunks {
        let exact = (frames.len() == 1).then(|| frames[0].len() as u64);
        Chunks {
            frames: frames.iter().cloned().collect(),
            exact,
        }
    }
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.frames.pop_front().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        match self.exact {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

struct Answers {
    json: Vec<Bytes>,
    sse: Vec<Bytes>,
    served: Arc<AtomicU64>,
}

const MODEL: &str = "gpt-4o-mini";

fn answers() -> Answers {
    let json = serde_json::json!({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 1_700_000_000, "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant",
            "content": "Hello! This is the benchmark's fixed answer."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 260, "completion_tokens": 11, "total_tokens": 271,
                  "prompt_tokens_details": {"cached_tokens": 0}},
        "system_fingerprint": "fp_bench"
    });
    let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
        let c = serde_json::json!({"id": "chatcmpl-bench", "object": "chat.completion.chunk",
            "created": 1_700_000_000, "model": MODEL,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        Bytes::from(format!("data: {c}\n\n"))
    };
    let mut sse = vec![chunk(
        serde_json::json!({"role": "assistant", "content": ""}),
        serde_json::Value::Null,
    )];
    for w in ["Hello! ", "This is ", "the benchmark's ", "fixed answer."] {
        sse.push(chunk(serde_json::json!({"content": w}), serde_json::Value::Null));
    }
    sse.push(chunk(serde_json::json!({}), serde_json::json!("stop")));
    let usage = serde_json::json!({"id": "chatcmpl-bench", "object": "chat.completion.chunk",
        "created": 1_700_000_000, "model": MODEL, "choices": [],
        "usage": {"prompt_tokens": 260, "completion_tokens": 11, "total_tokens": 271}});
    sse.push(Bytes::from(format!("data: {usage}\n\n")));
    sse.push(Bytes::from_static(b"data: [DONE]\n\n"));
    Answers {
        json: vec![Bytes::from(json.to_string())],
        sse,
        served: Arc::default(),
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

async fn handle(answers: Arc<Answers>, req: Request<Incoming>) -> Result<Response<Chunks>, Infallible> {
    if req.method() != Method::POST || req.uri().path() != "/v1/chat/completions" {
        let mut r = Response::new(Chunks::new(&[Bytes::from_static(b"not found")]));
        *r.status_mut() = StatusCode::NOT_FOUND;
        return Ok(r);
    }
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    answers.served.fetch_add(1, Ordering::Relaxed);
    let stream = contains(&body, b"\"stream\":true") || contains(&body, b"\"stream\": true");
    let resp = if stream {
        Response::builder()
            .header("content-type", "text/event-stream")
            .header("cache-control", "no-cache")
            .body(Chunks::new(&answers.sse))
    } else {
        Response::builder()
            .header("content-type", "application/json")
            .body(Chunks::new(&answers.json))
    };
    Ok(resp.unwrap_or_else(|_| Response::new(Chunks::new(&[]))))
}

/// Starts the mock on 127.0.0.1, port 0, on the current runtime; returns its address and the
/// count of completions it has served.
pub async fn start() -> anyhow::Result<(SocketAddr, Arc<AtomicU64>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let answers = Arc::new(answers());
    let served = answers.served.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let answers = answers.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| handle(answers.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok((addr, served))
}
