"""The official `anthropic` SDK against `/v1/anthropic-proxy`.

The SDK (2.x) sends both `api_key=` and `auth_token=` as `Authorization: Bearer`; the
`x-api-key` header that earlier versions sent for `api_key=` (and that curl examples use) is
sent here through the SDK's own header options, with `Authorization` omitted.
"""

import asyncio

import anthropic
import pytest

from conftest import TIMEOUT_SECONDS, sandbox_reply, tokens

MODEL = "claude-sonnet-4"


AUTHS = ["api_key", "auth_token", "x-api-key"]


def client(gateway_url: str, key: str, auth: str = "api_key") -> anthropic.Anthropic:
    """A client that presents `key` the way `auth` names: the `api_key=` or `auth_token=`
    argument, or only an `x-api-key` header."""
    credential = {
        "api_key": {"api_key": key},
        "auth_token": {"auth_token": key},
        "x-api-key": {"api_key": key, "default_headers": {"X-Api-Key": key, "Authorization": anthropic.omit}},
    }[auth]
    return anthropic.Anthropic(
        base_url=f"{gateway_url}/v1/anthropic-proxy",
        timeout=TIMEOUT_SECONDS,
        max_retries=0,
        **credential,
    )


def assert_credential(headers, key: str, auth: str) -> None:
    if auth == "x-api-key":
        assert headers["x-api-key"] == key
        assert "authorization" not in headers
    else:
        assert headers["authorization"] == f"Bearer {key}"
        assert "x-api-key" not in headers


def create(c: anthropic.Anthropic, text: str = "x", **kw):
    return c.messages.create(
        model=kw.pop("model", MODEL),
        max_tokens=kw.pop("max_tokens", 100),
        messages=[{"role": "user", "content": text}],
        **kw,
    )


def check_message(m, reply: str, input_tokens: int) -> None:
    assert m.type == "message"
    assert m.role == "assistant"
    assert m.model == MODEL
    assert [b.type for b in m.content] == ["text"]
    assert m.content[0].text == reply
    assert m.stop_reason == "end_turn"
    assert m.usage.input_tokens == input_tokens
    assert m.usage.output_tokens == tokens(reply)


@pytest.mark.parametrize("auth", AUTHS)
def test_messages(gateway_url, dev_key, auth):
    system, user = "Be brief.", "Hello there"
    raw = client(gateway_url, dev_key, auth).messages.with_raw_response.create(
        model=MODEL,
        max_tokens=100,
        system=system,
        messages=[{"role": "user", "content": user}],
    )
    assert_credential(raw.http_request.headers, dev_key, auth)
    assert raw.http_request.headers["anthropic-version"]
    assert raw.headers["x-tokenone-model"] == MODEL
    check_message(raw.parse(), sandbox_reply(MODEL, user), tokens(system, user))


def test_multi_turn_with_system_blocks(gateway_url, dev_key):
    user = "Last turn"
    raw = client(gateway_url, dev_key, "auth_token").messages.with_raw_response.create(
        model=MODEL,
        max_tokens=100,
        system=[{"type": "text", "text": "Be brief."}],
        messages=[
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": user}]},
        ],
    )
    check_message(raw.parse(), sandbox_reply(MODEL, user), tokens("Be brief.", "first", "ok", user))


def test_raw_stream_events(gateway_url, dev_key):
    user = "Stream me"
    reply = sandbox_reply(MODEL, user)
    events = list(create(client(gateway_url, dev_key), user, stream=True))
    types = [e.type for e in events]
    assert types[:2] == ["message_start", "content_block_start"]
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(types[2:-3]) == {"content_block_delta"}
    start = events[0].message
    assert start.model == MODEL and start.role == "assistant" and start.content == []
    assert start.usage.input_tokens == tokens(user)
    assert "".join(e.delta.text for e in events if e.type == "content_block_delta") == reply
    delta = events[-2]
    assert delta.delta.stop_reason == "end_turn"
    assert delta.usage.output_tokens == tokens(reply)


def test_stream_helper(gateway_url, dev_key):
    user = "Hello there"
    reply = sandbox_reply(MODEL, user)
    with client(gateway_url, dev_key, "x-api-key").messages.stream(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": user}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == reply
    check_message(final, reply, tokens(user))


def test_async_client_streams(gateway_url, dev_key):
    async def run():
        c = anthropic.AsyncAnthropic(
            base_url=f"{gateway_url}/v1/anthropic-proxy",
            api_key=dev_key,
            timeout=TIMEOUT_SECONDS,
            max_retries=0,
        )
        async with c.messages.stream(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "async"}]
        ) as stream:
            text = await stream.get_final_text()
        await c.close()
        return text

    assert asyncio.run(run()) == sandbox_reply(MODEL, "async")


@pytest.mark.parametrize("auth", AUTHS)
@pytest.mark.parametrize("stream", [False, True])
def test_unknown_key_is_authentication_error(gateway_url, unknown_key, auth, stream):
    with pytest.raises(anthropic.AuthenticationError) as e:
        create(client(gateway_url, unknown_key, auth), stream=stream)
    assert_credential(e.value.request.headers, unknown_key, auth)
    assert e.value.status_code == 401
    assert e.value.body["type"] == "error"
    assert e.value.body["error"]["type"] == "authentication_error"
    assert "invalid API key" in str(e.value)


def test_revoked_key_is_authentication_error(gateway_url, revoked_key):
    with pytest.raises(anthropic.AuthenticationError) as e:
        create(client(gateway_url, revoked_key))
    assert e.value.status_code == 401
    assert "revoked" in str(e.value)


def test_unknown_model_is_not_found(gateway_url, dev_key):
    with pytest.raises(anthropic.NotFoundError) as e:
        create(client(gateway_url, dev_key), model="no-such-model-xyz")
    assert e.value.status_code == 404
    assert e.value.body["error"]["type"] == "not_found_error"
    assert "no-such-model-xyz" in str(e.value)


def test_key_without_scope_is_permission_denied(gateway_url, openai_only_key):
    with pytest.raises(anthropic.PermissionDeniedError) as e:
        create(client(gateway_url, openai_only_key))
    assert e.value.status_code == 403
    assert e.value.body["error"]["type"] == "permission_error"
    assert "not scoped" in str(e.value)


def test_scope_allows_an_anthropic_only_key(gateway_url, anthropic_only_key):
    m = create(client(gateway_url, anthropic_only_key), "scoped")
    assert m.content[0].text == sandbox_reply(MODEL, "scoped")


def test_invalid_request_is_bad_request(gateway_url, dev_key):
    with pytest.raises(anthropic.BadRequestError) as e:
        create(client(gateway_url, dev_key), max_tokens=2_000_000)
    assert e.value.status_code == 400
    assert e.value.body["error"]["type"] == "invalid_request_error"
    assert "max tokens" in str(e.value)


def test_rate_limit_is_rate_limit_error(gateway_url, rate_limited_key):
    c = client(gateway_url, rate_limited_key)
    create(c, "1")
    with pytest.raises(anthropic.RateLimitError) as e:
        create(c, "2")
    assert e.value.status_code == 429
    assert e.value.body["error"]["type"] == "rate_limit_error"
    assert int(e.value.response.headers["retry-after"]) >= 1
    assert "rate limit" in str(e.value)
