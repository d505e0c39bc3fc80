//! Mock LLM vendors on port 0: OpenAI-, Anthropic- and Gemini-format upstreams that answer
//! realistically (JSON or SSE, with usage), record what they were sent, and can be scripted to
//! fail, stall, redirect, send garbage or cut a stream.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenAi,
    Anthropic,
    Gemini,
}

/// What the mock does with the next request.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// A normal answer (stream or not, as asked) with this text.
    Reply(String),
    /// This status with this JSON body.
    Status(u16, Value),
    /// Accept the request and never answer.
    Stall,
    /// Stream: send the first `n` events, then stall.
    StallAfter(usize),
    /// Stream: send the first `n` events, then drop the connection.
    CutAfter(usize),
    /// 302 to another place.
    Redirect,
    /// 200 with a body that is not JSON.
    Garbage,
    /// A normal answer whose usage numbers are negative.
    NegativeUsage,
    /// Stream split into 1-byte chunks (multi-byte UTF-8 characters cut in half).
    ByteByByte(String),
}

#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

#[derive(Clone)]
struct Shared {
    /// While closed, every request waits before answering (lets a test hold calls in flight).
    gate: tokio::sync::watch::Sender<bool>,
    format: Format,
    script: Arc<Mutex<VecDeque<Behaviour>>>,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

pub struct MockUpstream {
    /// Base URL including the API version path, as TokenOne's `providers.<name>.base_url`.
    pub base_url: String,
    shared: Shared,
    _task: tokio::task::JoinHandle<()>,
}

impl MockUpstream {
    pub async fn start(format: Format) -> MockUpstream {
        let (gate, _) = tokio::sync::watch::channel(true);
        let shared = Shared {
            gate,
            format,
            script: Default::default(),
            requests: Default::default(),
        };
        let app = Router::new()
            .route("/v1/chat/completions", post(handle))
            .route("/v1/messages", post(handle))
            .route("/v1beta/models/{model}", post(handle))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind mock");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let base_url = match format {
            Format::Gemini => format!("http://{addr}/v1beta"),
            _ => format!("http://{addr}/v1"),
        };
        MockUpstream {
            base_url,
            shared,
            _task: task,
        }
    }

    /// Queues behaviours for the next requests (then back to normal replies).
    pub fn script(&self, b: Behaviour) {
        self.shared.script.lock().expect("lock").push_back(b);
    }

    /// Holds every following request until `open_gate`.
    pub fn close_gate(&self) {
        self.shared.gate.send_replace(false);
    }

    pub fn open_gate(&self) {
        self.shared.gate.send_replace(true);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().expect("lock").clone()
    }
}

fn text_of_request(format: Format, body: &Value) -> String {
    let last = match format {
        Format::OpenAi | Format::Anthropic => body["messages"].as_array().and_then(|m| m.last()).cloned(),
        Format::Gemini => body["contents"].as_array().and_then(|m| m.last()).cloned(),
    };
    let Some(last) = last else { return String::new() };
    match format {
        Format::OpenAi => last["content"].as_str().unwrap_or("").to_string(),
        Format::Anthropic => match &last["content"] {
            Value::String(s) => s.clone(),
            Value::Array(blocks) => blocks.iter().filter_map(|b| b["text"].as_str()).collect(),
            _ => String::new(),
        },
        Format::Gemini => last["parts"]
            .as_array()
            .map(|p| p.iter().filter_map(|x| x["text"].as_str()).collect())
            .unwrap_or_default(),
    }
}

async fn handle(State(s): State<Shared>, req: Request) -> Response {
    let path = req.uri().to_string();
    let headers = req.headers().clone();
    let bytes = axum::body::to_bytes(req.into_body(), 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    s.requests.lock().expect("lock").push(Recorded {
        path: path.clone(),
        headers,
        body: body.clone(),
    });
    let mut gate = s.gate.subscribe();
    let _ = gate.wait_for(|open| *open).await;
    let behaviour = s.script.lock().expect("lock").pop_front();
    let stream = match s.format {
        Format::Gemini => path.contains("streamGenerateContent"),
        _ => body["stream"].as_bool().unwrap_or(false),
    };
    let model = body["model"].as_str().unwrap_or("gemini-mock").to_string();
    let default_text = format!("Echo: {}", text_of_request(s.format, &body));
    match behaviour.unwrap_or(Behaviour::Reply(default_text)) {
        Behaviour::Reply(text) => answer(s.format, &model, &text, stream, None, 1, false),
        Behaviour::ByteByByte(text) => answer(s.format, &model, &text, stream, None, 1, true),
        Behaviour::NegativeUsage => answer(s.format, &model, "negative", stream, None, -5, false),
        Behaviour::Status(code, v) => (
            StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY),
            axum::Json(v),
        )
            .into_response(),
        Behaviour::Stall => {
            std::future::pending::<()>().await;
            StatusCode::OK.into_response()
        }
        Behaviour::StallAfter(n) => answer(s.format, &model, "a b c d e f g h", true, Some((n, false)), 1, false),
        Behaviour::CutAfter(n) => answer(s.format, &model, "a b c d e f g h", true, Some((n, true)), 1, false),
        Behaviour::Redirect => (
            StatusCode::FOUND,
            [("location", "http://127.0.0.1:1/elsewhere")],
            "moved",
        )
            .into_response(),
        Behaviour::Garbage => (
            StatusCode::OK,
            [("content-type", "application/json")],
            "<html>oops</html>",
        )
            .into_response(),
    }
}

/// Builds a realistic answer; `usage_sign` < 0 makes the usage numbers negative; `interrupt`
/// (n, cut) stops a stream after n events by stalling or cutting.
fn answer(
    format: Format,
    model: &str,
    text: &str,
    stream: bool,
    interrupt: Option<(usize, bool)>,
    usage_sign: i64,
    byte_by_byte: bool,
) -> Response {
    let (inp, out) = (11 * usage_sign, (text.chars().count() as i64 / 4 + 1) * usage_sign);
    if !stream {
        let v = match format {
            Format::OpenAi => json!({
                "id": "chatcmpl-mock", "object": "chat.completion", "created": 1_700_000_000, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": inp, "completion_tokens": out, "total_tokens": inp + out,
                          "prompt_tokens_details": {"cached_tokens": 0}},
                "x_vendor_extra": {"kept": true}
            }),
            Format::Anthropic => json!({
                "id": "msg_mock", "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": null,
                "usage": {"input_tokens": inp, "output_tokens": out, "cache_read_input_tokens": 0}
            }),
            Format::Gemini => json!({
                "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP", "index": 0}],
                "usageMetadata": {"promptTokenCount": inp, "candidatesTokenCount": out, "totalTokenCount": inp + out},
                "modelVersion": "gemini-mock-001"
            }),
        };
        return axum::Json(v).into_response();
    }
    let words: Vec<String> = text.split_inclusive(' ').map(str::to_string).collect();
    let mut events: Vec<String> = Vec::new();
    match format {
        Format::OpenAi => {
            let chunk = |delta: Value, finish: Value| {
                json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            };
            events.push(format!(
                "data: {}\n\n",
                chunk(json!({"role": "assistant", "content": ""}), Value::Null)
            ));
            for w in &words {
                events.push(format!("data: {}\n\n", chunk(json!({"content": w}), Value::Null)));
            }
            events.push(format!("data: {}\n\n", chunk(json!({}), json!("stop"))));
            events.push(format!(
                "data: {}\n\n",
                json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
                       "choices": [], "usage": {"prompt_tokens": inp, "completion_tokens": out, "total_tokens": inp + out}})
            ));
            events.push("data: [DONE]\n\n".into());
        }
        Format::Anthropic => {
            events.push(format!(
                "event: message_start\ndata: {}\n\n",
                json!({"type": "message_start", "message": {
                "id": "msg_mock", "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": inp, "output_tokens": 1}}})
            ));
            events.push(format!(
                "event: content_block_start\ndata: {}\n\n",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
            ));
            events.push("event: ping\ndata: {\"type\": \"ping\"}\n\n".into());
            for w in &words {
                events.push(format!(
                    "event: content_block_delta\ndata: {}\n\n",
                    json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}})
                ));
            }
            events.push(format!(
                "event: content_block_stop\ndata: {}\n\n",
                json!({"type": "content_block_stop", "index": 0})
            ));
            events.push(format!("event: message_delta\ndata: {}\n\n", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": out}})));
            events.push(format!(
                "event: message_stop\ndata: {}\n\n",
                json!({"type": "message_stop"})
            ));
        }
        Format::Gemini => {
            for (i, w) in words.iter().enumerate() {
                let mut c = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": w}]}, "index": 0}], "modelVersion": "gemini-mock-001"});
                if i + 1 == words.len() {
                    c["candidates"][0]["finishReason"] = json!("STOP");
                    c["usageMetadata"] =
                        json!({"promptTokenCount": inp, "candidatesTokenCount": out, "totalTokenCount": inp + out});
                }
                events.push(format!("data: {c}\n\n"));
            }
        }
    }
    let (events, tail) = match interrupt {
        Some((n, cut)) => (events.into_iter().take(n).collect::<Vec<_>>(), Some(cut)),
        None => (events, None),
    };
    let chunks: Vec<Bytes> = if byte_by_byte {
        events
            .concat()
            .into_bytes()
            .into_iter()
            .map(|b| Bytes::from(vec![b]))
            .collect()
    } else {
        events.into_iter().map(Bytes::from).collect()
    };
    let body = futures::stream::unfold((chunks.into_iter(), tail), |(mut it, tail)| async move {
        match it.next() {
            Some(c) => {
                // A tiny pause between events makes each one its own TCP write, as vendors do.
                tokio::time::sleep(Duration::from_millis(1)).await;
                Some((Ok::<Bytes, std::io::Error>(c), (it, tail)))
            }
            None => match tail {
                Some(false) => {
                    std::future::pending::<()>().await;
                    None
                }
                Some(true) => Some((Err(std::io::Error::other("cut")), (it, None))),
                None => None,
            },
        }
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
