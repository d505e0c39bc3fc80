"""The official `google-genai` SDK against `/v1/gemini-proxy`.

With a custom `base_url` and an API key, google-genai sends the key as `x-goog-api-key` and builds
`{base_url}/{api_version}/models/{model}:generateContent` (`:streamGenerateContent?alt=sse` when
streaming), so the base URL to give it is `<gateway>/v1/gemini-proxy`; both `v1beta` and `v1`
are served.
"""

import asyncio
from urllib.parse import urlsplit

import pytest
from google import genai
from google.genai import errors, types

from conftest import TIMEOUT_SECONDS, sandbox_reply, tokens

MODEL = "gemini-1.5-flash"


class Recorded:
    """A client and the requests it sent (method, URL, headers)."""

    def __init__(self, gateway_url: str, key: str, api_version: str = "v1beta"):
        self.requests = []
        self.client = genai.Client(
            api_key=key,
            http_options=types.HttpOptions(
                base_url=f"{gateway_url}/v1/gemini-proxy",
                api_version=api_version,
                timeout=int(TIMEOUT_SECONDS * 1000),
                retry_options=types.HttpRetryOptions(attempts=1),
                client_args={"event_hooks": {"request": [self.requests.append]}},
            ),
        )
        self.models = self.client.models


def assert_sent(req, gateway_url: str, key: str, path: str, query: str = "") -> None:
    url = urlsplit(str(req.url))
    assert f"{url.scheme}://{url.netloc}" == gateway_url
    assert url.path == path
    assert url.query == query
    assert req.headers["x-goog-api-key"] == key
    assert "authorization" not in req.headers and "x-api-key" not in req.headers


@pytest.mark.parametrize("api_version", ["v1beta", "v1"])
def test_generate_content(gateway_url, dev_key, api_version):
    c = Recorded(gateway_url, dev_key, api_version)
    system, user = "Be brief.", "Hello there"
    r = c.models.generate_content(
        model=MODEL,
        contents=user,
        config=types.GenerateContentConfig(system_instruction=system, max_output_tokens=100),
    )
    assert_sent(
        c.requests[-1], gateway_url, dev_key, f"/v1/gemini-proxy/{api_version}/models/{MODEL}:generateContent"
    )
    reply = sandbox_reply(MODEL, user)
    assert r.text == reply
    assert len(r.candidates) == 1
    assert r.candidates[0].content.role == "model"
    assert r.candidates[0].finish_reason == types.FinishReason.STOP
    assert r.model_version == MODEL
    assert r.usage_metadata.prompt_token_count == tokens(system, user)
    assert r.usage_metadata.candidates_token_count == tokens(reply)
    assert r.usage_metadata.total_token_count == tokens(system, user) + tokens(reply)
    assert r.sdk_http_response.headers["x-tokenone-model"] == MODEL


@pytest.mark.parametrize("api_version", ["v1beta", "v1"])
def test_generate_content_stream(gateway_url, dev_key, api_version):
    c = Recorded(gateway_url, dev_key, api_version)
    user = "Stream me"
    chunks = list(c.models.generate_content_stream(model=MODEL, contents=user))
    assert_sent(
        c.requests[-1],
        gateway_url,
        dev_key,
        f"/v1/gemini-proxy/{api_version}/models/{MODEL}:streamGenerateContent",
        "alt=sse",
    )
    reply = sandbox_reply(MODEL, user)
    assert len(chunks) > 2
    assert "".join(ch.text or "" for ch in chunks) == reply
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    usage = chunks[-1].usage_metadata
    assert usage.prompt_token_count == tokens(user)
    assert usage.candidates_token_count == tokens(reply)
    assert usage.total_token_count == tokens(user) + tokens(reply)


def test_multi_turn_chat(gateway_url, dev_key):
    # Keep the genai.Client referenced: it closes its HTTP client when collected.
    c = Recorded(gateway_url, dev_key, "v1")
    chat = c.client.chats.create(model=MODEL)
    first = chat.send_message("first")
    assert first.text == sandbox_reply(MODEL, "first")
    long = "ü" * 250
    second = chat.send_message(long)
    assert second.text == sandbox_reply(MODEL, long)
    assert len(second.text) == len(f"Sandbox reply from {MODEL}: ") + 200
    # The whole history went up: both user turns and the model's first answer.
    assert second.usage_metadata.prompt_token_count == tokens("first", first.text, long)


def test_async_client_streams(gateway_url, dev_key):
    c = Recorded(gateway_url, dev_key)

    async def run() -> str:
        stream = await c.client.aio.models.generate_content_stream(model=MODEL, contents="async")
        return "".join([ch.text or "" async for ch in stream])

    assert asyncio.run(run()) == sandbox_reply(MODEL, "async")


def api_error(c: Recorded, stream: bool = False, **kw) -> errors.APIError:
    config = types.GenerateContentConfig(**kw.pop("config", {}))
    model = kw.pop("model", MODEL)
    with pytest.raises(errors.ClientError) as e:
        if stream:
            list(c.models.generate_content_stream(model=model, contents="x", config=config))
        else:
            c.models.generate_content(model=model, contents="x", config=config)
    return e.value


@pytest.mark.parametrize("stream", [False, True])
def test_unknown_key_is_401(gateway_url, unknown_key, stream):
    e = api_error(Recorded(gateway_url, unknown_key), stream)
    assert e.code == 401
    assert e.status == "UNAUTHENTICATED"
    assert e.message == "invalid API key"
    assert "invalid API key" in str(e)


def test_revoked_key_is_401(gateway_url, revoked_key):
    e = api_error(Recorded(gateway_url, revoked_key, "v1"))
    assert e.code == 401
    assert e.status == "UNAUTHENTICATED"
    assert "revoked" in e.message


def test_unknown_model_is_404(gateway_url, dev_key):
    e = api_error(Recorded(gateway_url, dev_key), model="no-such-model-xyz")
    assert e.code == 404
    assert e.status == "NOT_FOUND"
    assert "no-such-model-xyz" in e.message


def test_key_without_scope_is_403(gateway_url, openai_only_key):
    e = api_error(Recorded(gateway_url, openai_only_key))
    assert e.code == 403
    assert e.status == "PERMISSION_DENIED"
    assert "not scoped" in e.message


def test_invalid_request_is_400(gateway_url, dev_key):
    e = api_error(Recorded(gateway_url, dev_key), config={"max_output_tokens": 2_000_000})
    assert e.code == 400
    assert e.status == "INVALID_ARGUMENT"
    assert "max tokens" in e.message


def test_rate_limit_is_429(gateway_url, rate_limited_key):
    c = Recorded(gateway_url, rate_limited_key)
    c.models.generate_content(model=MODEL, contents="1")
    e = api_error(c)
    assert e.code == 429
    assert e.status == "RESOURCE_EXHAUSTED"
    assert int(e.response.headers["retry-after"]) >= 1
    assert "rate limit" in e.message
