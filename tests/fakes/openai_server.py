"""A local stand-in for the OpenAI API on 127.0.0.1, speaking its wire format.

Embeddings are deterministic bags of hashed words, so listings sharing words are close. Chat
completions with a JSON schema answer `chat_answer(body)` (by default: every required metric
scored 77, quoting the trainee's first line).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

API_KEY = "sk-test-forecourt"


class FakeOpenAI:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.fail_next = 0  # answer this many requests with 500 first
        self.chat_answer: Callable[[dict], dict] = self.default_answer
        self.app = Starlette(routes=[
            Route("/v1/embeddings", self.embeddings, methods=["POST"]),
            Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
            Route("/v1/realtime/client_secrets", self.realtime_client_secrets, methods=["POST"]),
        ])

    @staticmethod
    def default_answer(body: dict) -> dict:
        schema = body["response_format"]["json_schema"]["schema"]
        transcript = body["messages"][-1]["content"]
        first = next(line for line in transcript.splitlines() if line.startswith("[trainee] "))
        quote = first.removeprefix("[trainee] ")[:40]
        metrics = {name: {"score": 77, "reason": "fake coach", "quote": quote}
                   for name in schema["properties"]["metrics"]["required"]}
        return {"metrics": metrics, "saleClosed": True, "summary": "Solid discovery."}

    async def _admit(self, request: Request) -> tuple[dict | None, JSONResponse | None]:
        """The request's body, or the error OpenAI would answer: a wrong key, or an injected 500."""
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return None, JSONResponse({"error": {"message": "Incorrect API key provided",
                                                 "type": "invalid_request_error", "code": "invalid_api_key"}},
                                      status_code=401)
        body = await request.json()
        self.requests.append(body)
        if self.fail_next:
            self.fail_next -= 1
            return None, JSONResponse({"error": {"message": "The server had an error", "type": "server_error"}},
                                      status_code=500)
        return body, None

    async def realtime_client_secrets(self, request: Request) -> JSONResponse:
        body, refused = await self._admit(request)
        if refused is not None:
            return refused
        session = body.get("session", {})
        if session.get("type") != "realtime" or not session.get("model"):
            return JSONResponse({"error": {"message": "session.type and session.model are required",
                                           "type": "invalid_request_error"}}, status_code=400)
        created = int(time.time())
        return JSONResponse({
            "value": f"ek_fake_{created}",
            "expires_at": created + body.get("expires_after", {}).get("seconds", 600),
            "session": {**session, "id": "sess_fake", "object": "realtime.session"},
        })

    async def chat_completions(self, request: Request) -> JSONResponse:
        body, refused = await self._admit(request)
        if refused is not None:
            return refused
        response_format = body.get("response_format", {})
        if response_format.get("type") != "json_schema" or not response_format["json_schema"].get("strict"):
            return JSONResponse({"error": {"message": "expected a strict json_schema", "type": "invalid_request_error"}},
                                status_code=400)
        content = json.dumps(self.chat_answer(body))
        return JSONResponse({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content, "refusal": None}}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150},
        })

    @staticmethod
    def vector(text: str, dimensions: int) -> list[float]:
        values = [0.0] * dimensions
        for word in text.lower().replace(",", " ").replace(".", " ").split():
            bucket = int(hashlib.sha256(word.encode()).hexdigest(), 16) % dimensions
            values[bucket] += 1.0
        norm = math.sqrt(sum(x * x for x in values)) or 1.0
        return [x / norm for x in values]

    async def embeddings(self, request: Request) -> JSONResponse:
        body, refused = await self._admit(request)
        if refused is not None:
            return refused
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dimensions = body.get("dimensions", 1536)
        return JSONResponse({
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": self.vector(text, dimensions)}
                     for i, text in enumerate(inputs)],
            "model": body["model"],
            "usage": {"prompt_tokens": sum(len(t.split()) for t in inputs),
                      "total_tokens": sum(len(t.split()) for t in inputs)},
        })
