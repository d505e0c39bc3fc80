"""Wire compatibility of TokenOne's proxy with the vendors' official Python SDKs.

These tests talk to a running gateway. `cargo test -p tokenone --test it sdk` starts one, creates
the keys and runs them; to run them by hand, start a gateway and set:

  TOKENONE_URL                     the gateway's base URL, e.g. http://127.0.0.1:8080
  TOKENONE_DEV_KEY                 a `to_dev_` key with all three scopes
  TOKENONE_DEV_KEY_OPENAI_ONLY     a `to_dev_` key scoped to openai only
  TOKENONE_DEV_KEY_ANTHROPIC_ONLY  a `to_dev_` key scoped to anthropic only (403 on the others)
  TOKENONE_REVOKED_KEY             a revoked key
  TOKENONE_RATE_LIMITED_KEY        a `to_dev_` key with rateLimitPerMinute 1 for each shape, unused

The dev keys' calls share the tenant's rate limit buckets (Anthropic and Gemini: 60 a minute), so
each file stays well under that.
"""

import math
import os
import secrets
import string

import pytest

# The SDKs read these; a developer's own settings must not leak into the tests.
for _name in (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_CUSTOM_HEADERS",
    "ANTHROPIC_PROFILE",
    "ANTHROPIC_CONFIG_DIR",
    "GOOGLE_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_GENAI_API_VERSION",
    "GOOGLE_GEMINI_BASE_URL",
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_CLOUD_LOCATION",
):
    os.environ.pop(_name, None)

# Short timeouts and no retries: a failure shows at once, with the gateway's own answer.
TIMEOUT_SECONDS = 10.0


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(
            f"{name} is not set. These tests run against a live TokenOne gateway; "
            "run them with `cargo test -p tokenone --test it sdk` (see sdk-tests/conftest.py).",
            pytrace=False,
        )
    return value


@pytest.fixture(scope="session")
def gateway_url() -> str:
    return _env("TOKENONE_URL").rstrip("/")


@pytest.fixture(scope="session")
def dev_key() -> str:
    return _env("TOKENONE_DEV_KEY")


@pytest.fixture(scope="session")
def openai_only_key() -> str:
    return _env("TOKENONE_DEV_KEY_OPENAI_ONLY")


@pytest.fixture(scope="session")
def anthropic_only_key() -> str:
    return _env("TOKENONE_DEV_KEY_ANTHROPIC_ONLY")


@pytest.fixture(scope="session")
def revoked_key() -> str:
    return _env("TOKENONE_REVOKED_KEY")


@pytest.fixture(scope="session")
def rate_limited_key() -> str:
    return _env("TOKENONE_RATE_LIMITED_KEY")


@pytest.fixture(scope="session")
def unknown_key() -> str:
    """Well formed (`to_dev_` + 32 base62 characters) but never issued."""
    alphabet = string.ascii_letters + string.digits
    return "to_dev_" + "".join(secrets.choice(alphabet) for _ in range(32))


def sandbox_reply(model: str, last_user_message: str) -> str:
    """The sandbox's deterministic answer (proxy.md "The sandbox provider")."""
    return f"Sandbox reply from {model}: {last_user_message[:200]}"


def tokens(*texts: str) -> int:
    """The sandbox's usage: ceil(characters / 4) of all the texts together, at least 1."""
    return max(1, math.ceil(sum(len(t) for t in texts) / 4))
