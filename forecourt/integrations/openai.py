"""OpenAI over httpx: text embeddings and JSON-schema chat completions.

The base URL is a setting so tests point it at a local fake speaking the same wire protocol.
The API key is sent, never logged.
"""

from __future__ import annotations

import asyncio
import json
import logging

import httpx

from forecourt.config import Settings
from forecourt.domain.errors import DomainError

log = logging.getLogger(__name__)

EMBEDDING_DIMENSIONS = 256  # text-embedding-3 models shorten to any size; the column is fixed
MAX_INPUTS_PER_CALL = 100
RETRIES = 2


class ProviderError(Exception):
    """The provider failed after retries; callers degrade instead of failing the request."""


def not_configured(provider: str) -> DomainError:
    return DomainError("PROVIDER_NOT_CONFIGURED", f"{provider} is not configured on this server")


class OpenAI:
    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        if not settings.openai_api_key:
            raise not_configured("OpenAI")
        self.model = settings.embedding_model
        self._client = httpx.AsyncClient(
            base_url=settings.openai_base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {settings.openai_api_key}"},
            timeout=httpx.Timeout(30, connect=5),
            transport=transport,
        )

    @classmethod
    def maybe(cls, settings: Settings) -> OpenAI | None:
        return cls(settings) if settings.openai_api_key else None

    async def embed(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), MAX_INPUTS_PER_CALL):
            vectors += await self._embed_batch(texts[start : start + MAX_INPUTS_PER_CALL])
        return vectors

    async def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        body = {"model": self.model, "input": texts, "dimensions": EMBEDDING_DIMENSIONS}
        data = sorted((await self._post("/embeddings", body, "embeddings"))["data"], key=lambda d: d["index"])
        return [d["embedding"] for d in data]

    async def chat_json(self, model: str, messages: list[dict], name: str, schema: dict) -> dict:
        """A chat completion constrained to `schema` (structured outputs); the parsed answer."""
        body = {
            "model": model,
            "messages": messages,
            "temperature": 0,
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": name, "strict": True, "schema": schema}},
        }
        message = (await self._post("/chat/completions", body, "chat completion"))["choices"][0]["message"]
        if message.get("refusal"):
            raise ProviderError(f"the model refused: {message['refusal'][:200]}")
        try:
            return json.loads(message["content"])
        except (TypeError, ValueError) as err:
            raise ProviderError("the model's answer is not JSON") from err

    async def realtime_client_secret(self, session: dict, ttl_seconds: int) -> dict:
        """An ephemeral key for a browser to open the Realtime session `session` over WebRTC
        (GA `POST /realtime/client_secrets`): {"value", "expires_at", "session"}."""
        body = {"expires_after": {"anchor": "created_at", "seconds": ttl_seconds}, "session": session}
        return await self._post("/realtime/client_secrets", body, "realtime client secret")

    async def _post(self, path: str, body: dict, what: str) -> dict:
        """POST with retries on transport errors, 408/409/429 and 5xx."""
        failure = "no attempt"
        for attempt in range(RETRIES + 1):
            try:
                response = await self._client.post(path, json=body)
            except httpx.TransportError as err:
                failure = f"transport error: {err.__class__.__name__}"
            else:
                if response.status_code == 200:
                    return response.json()
                failure = f"HTTP {response.status_code}"
                if response.status_code not in (408, 409, 429) and response.status_code < 500:
                    break  # our request is wrong: retrying will not help
            if attempt < RETRIES:
                await asyncio.sleep(0.5 * 2**attempt)
        log.warning("OpenAI %s failed: %s", what, failure)
        raise ProviderError(f"{what} failed: {failure}")

    async def close(self) -> None:
        await self._client.aclose()
