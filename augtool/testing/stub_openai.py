"""A small OpenAI-compatible HTTP server whose failures are scripted.

It answers ``GET /v1/models`` and ``POST /v1/chat/completions`` on 127.0.0.1. Each chat
request takes the next scripted action (an HTTP error with headers, a stall longer than
the client's timeout, a fixed reply); when the script is empty it replies
``"reply: <last user message>"`` after ``latency`` seconds. Used to test retries,
``Retry-After``, timeouts and resume, and to measure concurrency, without a model.

    with StubOpenAIServer(latency=0.05) as server:
        server.script(Status(429, {"Retry-After": "1"}), Status(500))
        ... openai client on server.base_url ...
        server.requests  # what was received
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Status:
    """Answer with this HTTP status (and headers)."""

    code: int
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Stall:
    """Wait this long before answering (longer than the client timeout: a timeout)."""

    seconds: float


@dataclass(frozen=True)
class Reply:
    """Answer with this content."""

    content: str


class StubOpenAIServer:
    """Context manager running the stub in a background thread."""

    def __init__(
        self,
        latency: float = 0.0,
        api_key: str | None = None,
        completion_tokens_only: bool = False,
        latency_of: Callable[[str], float] | None = None,
    ) -> None:
        self.latency = latency
        #: Per-request latency from the last user message (a long tail, say), if given.
        self.latency_of = latency_of
        self.api_key = api_key
        #: Reject ``max_tokens`` with OpenAI's 400, as its reasoning models do.
        self.completion_tokens_only = completion_tokens_only
        self.requests: list[dict[str, Any]] = []
        self._script: deque[Status | Stall | Reply] = deque()
        self._targeted: dict[str, deque[Status | Stall | Reply]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def script(self, *actions: Status | Stall | Reply, when: str | None = None) -> None:
        """Queue actions for the next chat requests, in order; with ``when``, only for
        requests whose last message contains that text."""
        with self._lock:
            if when is None:
                self._script.extend(actions)
            else:
                self._targeted.setdefault(when, deque()).extend(actions)

    def _next_action(self, message: str) -> Status | Stall | Reply | None:
        with self._lock:
            for needle, queue in self._targeted.items():
                if needle in message and queue:
                    return queue.popleft()
            return self._script.popleft() if self._script else None

    def __enter__(self) -> StubOpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(
                self,
                code: int,
                body: dict[str, Any] | None = None,
                headers: dict[str, str] | None = None,
            ) -> None:
                payload = json.dumps(body or {}).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _authorized(self) -> bool:
                if stub.api_key is None:
                    return True
                return self.headers.get("Authorization") == f"Bearer {stub.api_key}"

            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                if not self._authorized():
                    self._send(401, {"error": {"message": "invalid api key"}})
                elif self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": "stub", "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self._authorized():
                    self._send(401, {"error": {"message": "invalid api key"}})
                    return
                with stub._lock:
                    stub.requests.append({"time": time.monotonic(), "body": body})
                if stub.completion_tokens_only and "max_tokens" in body:
                    message = (
                        "Unsupported parameter: 'max_tokens' is not supported with this "
                        "model. Use 'max_completion_tokens' instead."
                    )
                    self._send(400, {"error": {"message": message, "param": "max_tokens"}})
                    return
                messages = body.get("messages") or [{"content": ""}]
                action = stub._next_action(str(messages[-1].get("content", "")))
                if isinstance(action, Status):
                    self._send(
                        action.code,
                        {"error": {"message": f"scripted {action.code}"}},
                        action.headers,
                    )
                    return
                if isinstance(action, Stall):
                    time.sleep(action.seconds)
                content = action.content if isinstance(action, Reply) else None
                if content is None:
                    last = str(messages[-1].get("content", ""))
                    time.sleep(stub.latency_of(last) if stub.latency_of else stub.latency)
                    content = f"reply: {messages[-1].get('content', '')}"
                self._send(
                    200,
                    {
                        "id": "stub-1",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body.get("model", "stub"),
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": content},
                            }
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    },
                )

        return Handler
