//! The SSE parser under every chunking, line ending and malformed input; the encoder.

use tokenone_providers::{SseEvent, SseParser, MAX_LINE_BYTES};

fn ev(event: Option<&str>, data: &str, id: Option<&str>) -> SseEvent {
    SseEvent {
        event: event.map(str::to_owned),
        data: data.to_owned(),
        id: id.map(str::to_owned),
    }
}

/// CRLF and LF lines, a comment, a multi-line data event, multi-byte UTF-8 (2-, 3- and 4-byte),
/// an id, an event with an empty data line, and a final event without its blank line.
const SAMPLE: &str = ": keep-alive comment\r\n\
event: message_start\r\n\
data: {\"text\":\"héllo €\"}\r\n\
\r\n\
data: line one\n\
data: line two 🌍\n\
id: 42\n\
\n\
: another comment\n\
event: ping\n\
data:\n\
\n\
data:no-space\n\
retry: 1000\n\
unknown-field: x\n\
\n\
event: message_stop\n\
data: {\"type\":\"message_stop\"}";

fn sample_events() -> Vec<SseEvent> {
    vec![
        ev(Some("message_start"), "{\"text\":\"héllo €\"}", None),
        ev(None, "line one\nline two 🌍", Some("42")),
        ev(Some("ping"), "", None),
        ev(None, "no-space", None),
        ev(Some("message_stop"), "{\"type\":\"message_stop\"}", None),
    ]
}

fn parse_chunks(chunks: &[&[u8]]) -> Vec<SseEvent> {
    let mut p = SseParser::new();
    let mut out = Vec::new();
    for c in chunks {
        out.extend(p.push(c));
    }
    out.extend(p.finish());
    out
}

#[test]
fn whole_sample() {
    assert_eq!(parse_chunks(&[SAMPLE.as_bytes()]), sample_events());
}

#[test]
fn split_at_every_byte_position() {
    let bytes = SAMPLE.as_bytes();
    for i in 0..=bytes.len() {
        let (a, b) = bytes.split_at(i);
        assert_eq!(parse_chunks(&[a, b]), sample_events(), "split at byte {i}");
    }
}

#[test]
fn split_into_three_at_every_pair_of_positions_near_utf8() {
    let bytes = SAMPLE.as_bytes();
    let euro = SAMPLE.find('€').unwrap();
    let globe = SAMPLE.find('🌍').unwrap();
    for i in euro..euro + 3 {
        for j in globe..globe + 4 {
            let (a, rest) = bytes.split_at(i);
            let (b, c) = rest.split_at(j - i);
            assert_eq!(parse_chunks(&[a, b, c]), sample_events(), "split at {i} and {j}");
        }
    }
}

#[test]
fn byte_by_byte() {
    let chunks: Vec<&[u8]> = SAMPLE.as_bytes().chunks(1).collect();
    assert_eq!(parse_chunks(&chunks), sample_events());
}

#[test]
fn carriage_return_line_endings() {
    let cr = SAMPLE.replace("\r\n", "\n").replace('\n', "\r");
    assert_eq!(parse_chunks(&[cr.as_bytes()]), sample_events());
    let bytes = cr.as_bytes();
    for i in 0..=bytes.len() {
        let (a, b) = bytes.split_at(i);
        assert_eq!(parse_chunks(&[a, b]), sample_events(), "CR split at {i}");
    }
}

#[test]
fn no_event_without_data_and_no_event_before_blank_line() {
    let mut p = SseParser::new();
    assert!(
        p.push(b"event: lonely\n\n").is_empty(),
        "an event without data is not dispatched"
    );
    assert!(
        p.push(b"data: pending\n").is_empty(),
        "not complete before the blank line"
    );
    assert_eq!(p.push(b"\n"), vec![ev(None, "pending", None)]);
    assert!(p.finish().is_empty());
}

#[test]
fn invalid_utf8_is_replaced_not_fatal() {
    let events = parse_chunks(&[b"data: a\xff\xfeb\n\n"]);
    assert_eq!(events, vec![ev(None, "a\u{fffd}\u{fffd}b", None)]);
}

#[test]
fn leading_bom_is_ignored() {
    let events = parse_chunks(&[b"\xef\xbb\xbfdata: x\n\n"]);
    assert_eq!(events, vec![ev(None, "x", None)]);
}

#[test]
fn oversized_line_is_dropped_and_parsing_continues() {
    let mut p = SseParser::new();
    let mut out = p.push(b"data: small\n\n");
    // A data line over the limit, fed in pieces.
    out.extend(p.push(b"data: "));
    let piece = vec![b'x'; 64 * 1024];
    for _ in 0..((MAX_LINE_BYTES / piece.len()) + 4) {
        out.extend(p.push(&piece));
    }
    out.extend(p.push(b"\n\n"));
    out.extend(p.push(b"event: after\ndata: fine\n\n"));
    out.extend(p.finish());
    assert_eq!(out, vec![ev(None, "small", None), ev(Some("after"), "fine", None)]);
}

#[test]
fn line_just_under_the_limit_is_kept() {
    let data = "y".repeat(MAX_LINE_BYTES - "data: ".len());
    let raw = format!("data: {data}\n\n");
    let events = parse_chunks(&[raw.as_bytes()]);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].data.len(), data.len());
}

#[test]
fn encode_is_the_wire_form_and_parses_back() {
    let e = ev(Some("message_delta"), "{\"a\":1}", None);
    assert_eq!(&e.encode()[..], b"event: message_delta\ndata: {\"a\":1}\n\n");
    assert_eq!(&SseEvent::data("[DONE]").encode()[..], b"data: [DONE]\n\n");
    let multi = ev(None, "one\ntwo\r\nthree", Some("7"));
    assert_eq!(&multi.encode()[..], b"id: 7\ndata: one\ndata: two\ndata: three\n\n");
    for e in sample_events() {
        assert_eq!(parse_chunks(&[&e.encode()]), vec![e.clone()], "{e:?}");
    }
}
