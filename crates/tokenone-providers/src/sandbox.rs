//! The sandbox provider of `to_dev_` keys: a deterministic reply in the client's shape,
//! streaming or not, with usage estimated from characters (proxy.md "The sandbox provider").

use serde_json::Value;

use crate::ir::{Part, Reply, Stop};
use crate::sse::SseEvent;
use crate::stream::{openai_include_usage_requested, Delta, Encoder};
use crate::{build_response, estimate_tokens, features, Shape, TranslateError, Usage};

/// How many characters of the last user message the reply quotes.
pub const QUOTED_CHARS: usize = 200;

/// The reply text and its usage.
pub fn reply(client: Shape, request: &Value, delivered_model: &str) -> Result<(String, Usage), TranslateError> {
    let f = features(client, request)?;
    let quoted: String = f.last_user_text.chars().take(QUOTED_CHARS).collect();
    let text = format!("Sandbox reply from {delivered_model}: {quoted}");
    let usage = Usage {
        input_tokens: estimate_tokens(f.text_chars),
        cached_input_tokens: 0,
        output_tokens: estimate_tokens(text.chars().count()),
    };
    Ok((text, usage))
}

/// A complete non-streaming answer in the client's shape.
pub fn respond(client: Shape, request: &Value, delivered_model: &str) -> Result<(Value, Usage), TranslateError> {
    let (text, usage) = reply(client, request, delivered_model)?;
    let r = Reply {
        parts: vec![Part::Text(text)],
        stop: Stop::EndTurn,
        stop_sequence: None,
        usage: Some(usage),
    };
    Ok((build_response(client, &r, delivered_model), usage))
}

/// Splits text into word-sized deltas (each word with the whitespace after it).
fn deltas(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_space = false;
    for c in text.chars() {
        if !c.is_whitespace() && in_space {
            out.push(std::mem::take(&mut cur));
        }
        in_space = c.is_whitespace();
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The same answer as a client-shape SSE stream. An OpenAI stream carries the usage chunk only
/// when the request asked `stream_options.include_usage`, and ends with `data: [DONE]`.
pub fn respond_stream(
    client: Shape,
    request: &Value,
    delivered_model: &str,
) -> Result<(Vec<SseEvent>, Usage), TranslateError> {
    let (text, usage) = reply(client, request, delivered_model)?;
    let include_usage = client != Shape::OpenAi || openai_include_usage_requested(request);
    let mut enc = Encoder::new(client, delivered_model, include_usage);
    let mut out = Vec::new();
    enc.encode(Delta::Start, usage, &mut out);
    for d in deltas(&text) {
        enc.encode(Delta::Text(d), usage, &mut out);
    }
    enc.encode(Delta::Stop(Stop::EndTurn, None), usage, &mut out);
    enc.close(usage, &mut out);
    Ok((out, usage))
}

#[cfg(test)]
mod tests {
    use super::deltas;

    #[test]
    fn deltas_keep_every_character() {
        let d = deltas("Sandbox reply from m:  héllo wörld ");
        assert_eq!(d, vec!["Sandbox ", "reply ", "from ", "m:  ", "héllo ", "wörld "]);
        assert_eq!(d.concat(), "Sandbox reply from m:  héllo wörld ");
    }
}
