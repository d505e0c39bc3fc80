//! What the router reads from a request: size, tools, images, JSON mode, limits, code, turns.

use crate::ir::{Conversation, JsonMode, Part, Role};
use crate::json::chars;
use crate::Features;

/// Characters of every text of the request: system, message text, tool results, tool-call arguments.
pub(crate) fn text_chars(conv: &Conversation) -> usize {
    let system: usize = conv.system.iter().map(|s| chars(s)).sum();
    let messages: usize = conv
        .messages
        .iter()
        .flat_map(|m| m.parts.iter())
        .map(|p| match p {
            Part::Text(t) => chars(t),
            Part::ToolCall(c) => chars(&c.arguments.to_text()),
            Part::ToolResult(r) => chars(&r.text()),
            _ => 0,
        })
        .sum();
    system + messages
}

fn all_text(conv: &Conversation) -> impl Iterator<Item = &str> {
    conv.system
        .iter()
        .map(String::as_str)
        .chain(
            conv.messages
                .iter()
                .flat_map(|m| m.parts.iter())
                .filter_map(|p| match p {
                    Part::Text(t) => Some(t.as_str()),
                    _ => None,
                }),
        )
}

/// A deliberately simple code detector: a fenced block, or at least two lines that look like
/// source code.
pub(crate) fn looks_like_code(text: &str) -> bool {
    if text.contains("```") {
        return true;
    }
    const STARTS: &[&str] = &[
        "def ",
        "fn ",
        "pub fn ",
        "class ",
        "import ",
        "from ",
        "#include",
        "function ",
        "const ",
        "let ",
        "var ",
        "return ",
        "public ",
        "private ",
        "package ",
        "use ",
        "SELECT ",
        "if (",
        "for (",
        "while (",
        "#!/",
    ];
    let mut score = 0;
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        let codey = t.ends_with('{')
            || t.ends_with(';')
            || t == "}"
            || t.ends_with("):")
            || t.contains(" => ")
            || STARTS.iter().any(|s| t.starts_with(s) && t.len() > s.len());
        if codey {
            score += 1;
            if score >= 2 {
                return true;
            }
        }
    }
    false
}

pub(crate) fn from_conversation(conv: &Conversation) -> Features {
    let last_user_text = conv
        .messages
        .iter()
        .rev()
        .filter(|m| m.role == Role::User)
        .find_map(|m| {
            let texts: Vec<&str> = m
                .parts
                .iter()
                .filter_map(|p| match p {
                    Part::Text(t) => Some(t.as_str()),
                    _ => None,
                })
                .collect();
            (!texts.is_empty()).then(|| texts.join("\n"))
        })
        .unwrap_or_default();
    Features {
        tools: !conv.tools.is_empty() || conv.has_tool_traffic(),
        images: conv.has_media,
        json_mode: conv.json != JsonMode::Off,
        max_output_tokens: conv.max_tokens,
        text_chars: text_chars(conv),
        last_user_text,
        system_text: conv.system.join("\n\n"),
        turns: conv.messages.len(),
        has_code: all_text(conv).any(looks_like_code),
    }
}

#[cfg(test)]
mod tests {
    use super::looks_like_code;

    #[test]
    fn code_detection() {
        assert!(looks_like_code("fix this:\n```rust\nfn main() {}\n```"));
        assert!(looks_like_code("def add(a, b):\n    return a + b"));
        assert!(looks_like_code("int x = 1;\nint y = 2;"));
        assert!(!looks_like_code("What is the capital of France?"));
        assert!(!looks_like_code("Write me a poem about the sea.\nMake it short."));
    }
}
