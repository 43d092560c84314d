"""A local stand-in for the OpenAI API on 127.0.0.1, speaking its wire format.

Embeddings are deterministic bags of hashed words, so listings sharing words are close.
"""

from __future__ import annotations

import hashlib
import math

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

API_KEY = "sk-test-forecourt"


class FakeOpenAI:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.fail_next = 0  # answer this many requests with 500 first
        self.app = Starlette(routes=[Route("/v1/embeddings", self.embeddings, methods=["POST"])])

    @staticmethod
    def vector(text: str, dimensions: int) -> list[float]:
        values = [0.0] * dimensions
        for word in text.lower().replace(",", " ").replace(".", " ").split():
            bucket = int(hashlib.sha256(word.encode()).hexdigest(), 16) % dimensions
            values[bucket] += 1.0
        norm = math.sqrt(sum(x * x for x in values)) or 1.0
        return [x / norm for x in values]

    async def embeddings(self, request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return JSONResponse({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                           "code": "invalid_api_key"}}, status_code=401)
        body = await request.json()
        self.requests.append(body)
        if self.fail_next:
            self.fail_next -= 1
            return JSONResponse({"error": {"message": "The server had an error", "type": "server_error"}},
                                status_code=500)
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
