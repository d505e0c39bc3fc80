"""The official `openai` SDK against `/v1/openai-proxy/v1`."""

import asyncio

import openai
import pytest

from conftest import TIMEOUT_SECONDS, sandbox_reply, tokens

MODEL = "gpt-4o-mini"


def client(gateway_url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{gateway_url}/v1/openai-proxy/v1",
        api_key=key,
        timeout=TIMEOUT_SECONDS,
        max_retries=0,
    )


def test_chat_with_bearer_key(gateway_url, dev_key):
    c = client(gateway_url, dev_key)
    system, user = "Be brief.", "Hello there"
    raw = c.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
    )
    # The SDK sends the key as `Authorization: Bearer` and nothing else.
    assert raw.http_request.headers["authorization"] == f"Bearer {dev_key}"
    assert "x-api-key" not in raw.http_request.headers
    assert raw.headers["x-tokenone-model"] == MODEL
    assert raw.headers["x-tokenone-call-id"]
    r = raw.parse()
    reply = sandbox_reply(MODEL, user)
    assert r.object == "chat.completion"
    assert r.model == MODEL
    assert len(r.choices) == 1
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == reply
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens == tokens(system, user)
    assert r.usage.completion_tokens == tokens(reply)
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r._request_id, "x-request-id reaches the SDK"


def test_multi_turn_quotes_first_200_chars_of_last_user_message(gateway_url, dev_key):
    c = client(gateway_url, dev_key)
    last = "é" * 150 + " " + "🌍" * 100
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": last}]},
    ]
    r = c.chat.completions.create(model=MODEL, messages=messages, max_completion_tokens=100)
    reply = sandbox_reply(MODEL, last)
    assert r.choices[0].message.content == reply
    assert r.choices[0].message.content.endswith(" " + "🌍" * 49)
    assert r.usage.prompt_tokens == tokens("first", "ok", last)
    assert r.usage.completion_tokens == tokens(reply)


def test_stream_without_include_usage_has_no_usage_chunk(gateway_url, dev_key):
    c = client(gateway_url, dev_key)
    user = "Stream me"
    chunks = list(
        c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": user}], stream=True)
    )
    assert len(chunks) > 2
    assert all(ch.object == "chat.completion.chunk" for ch in chunks)
    assert all(ch.usage is None for ch in chunks), "no usage chunk when not asked for"
    assert all(len(ch.choices) == 1 for ch in chunks)
    assert len({ch.id for ch in chunks}) == 1
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks)
    assert text == sandbox_reply(MODEL, user)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert [ch.choices[0].finish_reason for ch in chunks[:-1]] == [None] * (len(chunks) - 1)


def test_stream_with_include_usage_ends_with_usage_chunk(gateway_url, dev_key):
    c = client(gateway_url, dev_key)
    user = "Stream me with usage"
    chunks = list(
        c.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": user}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    reply = sandbox_reply(MODEL, user)
    with_usage = [ch for ch in chunks if ch.usage is not None]
    assert len(with_usage) == 1, "exactly one usage chunk"
    last = chunks[-1]
    assert last is with_usage[0], "the usage chunk is the last one"
    assert last.choices == []
    assert last.usage.prompt_tokens == tokens(user)
    assert last.usage.completion_tokens == tokens(reply)
    assert last.usage.total_tokens == tokens(user) + tokens(reply)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == reply
    # And explicitly declining it is the same as not asking.
    declined = list(
        c.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": user}],
            stream=True,
            stream_options={"include_usage": False},
        )
    )
    assert all(ch.usage is None for ch in declined)


def test_stream_helper_accumulates_the_completion(gateway_url, dev_key):
    c = client(gateway_url, dev_key)
    with c.chat.completions.stream(
        model=MODEL,
        messages=[{"role": "user", "content": "Hi"}],
        stream_options={"include_usage": True},
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()
    assert "".join(deltas) == sandbox_reply(MODEL, "Hi")
    assert final.choices[0].message.content == sandbox_reply(MODEL, "Hi")
    assert final.usage.completion_tokens == tokens(sandbox_reply(MODEL, "Hi"))


def test_async_client_streams(gateway_url, dev_key):
    async def run() -> str:
        c = openai.AsyncOpenAI(
            base_url=f"{gateway_url}/v1/openai-proxy/v1",
            api_key=dev_key,
            timeout=TIMEOUT_SECONDS,
            max_retries=0,
        )
        stream = await c.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "async"}], stream=True
        )
        text = "".join([ch.choices[0].delta.content or "" async for ch in stream])
        await c.close()
        return text

    assert asyncio.run(run()) == sandbox_reply(MODEL, "async")


def test_models_list(gateway_url, dev_key):
    models = list(client(gateway_url, dev_key).models.list())
    assert MODEL in [m.id for m in models]
    assert all(m.object == "model" and m.owned_by for m in models)


def test_scope_allows_an_openai_only_key(gateway_url, openai_only_key):
    r = client(gateway_url, openai_only_key).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "scoped"}]
    )
    assert r.choices[0].message.content == sandbox_reply(MODEL, "scoped")


@pytest.mark.parametrize("stream", [False, True])
def test_unknown_key_is_authentication_error(gateway_url, unknown_key, stream):
    with pytest.raises(openai.AuthenticationError) as e:
        client(gateway_url, unknown_key).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x"}], stream=stream
        )
    assert e.value.status_code == 401
    assert e.value.type == "authentication_error"
    assert e.value.code == "invalid_api_key"
    assert "invalid API key" in str(e.value)


def test_revoked_key_is_authentication_error(gateway_url, revoked_key):
    with pytest.raises(openai.AuthenticationError) as e:
        client(gateway_url, revoked_key).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x"}]
        )
    assert e.value.status_code == 401
    assert "revoked" in str(e.value)


def test_unknown_model_is_not_found(gateway_url, dev_key):
    with pytest.raises(openai.NotFoundError) as e:
        client(gateway_url, dev_key).chat.completions.create(
            model="no-such-model-xyz", messages=[{"role": "user", "content": "x"}]
        )
    assert e.value.status_code == 404
    assert e.value.code == "model_not_found"
    assert "no-such-model-xyz" in str(e.value)


def test_key_without_scope_is_permission_denied(gateway_url, anthropic_only_key):
    with pytest.raises(openai.PermissionDeniedError) as e:
        client(gateway_url, anthropic_only_key).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x"}]
        )
    assert e.value.status_code == 403
    assert e.value.type == "permission_error"
    assert "not scoped" in str(e.value)


def test_invalid_request_is_bad_request(gateway_url, dev_key):
    with pytest.raises(openai.BadRequestError) as e:
        client(gateway_url, dev_key).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x"}], max_tokens=2_000_000
        )
    assert e.value.status_code == 400
    assert e.value.type == "invalid_request_error"
    assert "max tokens" in str(e.value)


def test_rate_limit_is_rate_limit_error(gateway_url, rate_limited_key):
    c = client(gateway_url, rate_limited_key)
    c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "1"}])
    with pytest.raises(openai.RateLimitError) as e:
        c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "2"}])
    assert e.value.status_code == 429
    assert e.value.type == "rate_limit_error"
    assert int(e.value.response.headers["retry-after"]) >= 1
    assert "rate limit" in str(e.value)
