"""``openai:`` — any OpenAI-compatible chat-completions server.

OpenAI, vLLM, llama.cpp, Ollama, ``transformers serve``... Requests run concurrently
(``--concurrency``) under a requests-per-minute cap (``--rpm``), each with its own timeout
(``--timeout``) and retries (exponential backoff with jitter, honouring ``Retry-After``) on
timeouts, connection errors, 429 and 5xx. Other errors (400, 404...) fail the request at
once. The API key is read from the environment and never logged or written.

Several servers serving the same model (``--base-url http://a/v1,http://b/v1``) share the
load: each request goes to the server with the fewest requests in flight (ties in turn),
a retry moves to another server, and a server that refuses connections is left out for a
few seconds. Which server answered never enters the cache key.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from augtool.core.generation.base import LLM, RequestBudgetExhausted, Result, Uncached
from augtool.core.generation.params import Failure, GenerationParams, Prompt, as_messages
from augtool.core.generation.retry import RateLimiter, RetryPolicy, retry_after_header
from augtool.core.generation.servers import parse_base_urls, redact_url
from augtool.errors import AugtoolError

OPENAI_URL = "https://api.openai.com/v1"
_RETRYABLE_STATUS = {408, 409, 429}
#: Seconds a server that refused a connection is left out of a pool (then tried again).
_BENCH_SECONDS = 5.0


@dataclass(eq=False)
class _Server:
    """One server of a pool: its client and what it has in flight."""

    index: int
    url: str
    client: Any
    in_flight: int = 0
    down_until: float = 0.0


class _Pool:
    """The servers of one run; :meth:`pick` chooses where the next request goes."""

    def __init__(self, urls: Sequence[str], make_client: Callable[[str], Any]) -> None:
        self.servers = [_Server(i, url, make_client(url)) for i, url in enumerate(urls)]
        self._turn = 0

    def pick(self, avoid: _Server | None = None) -> _Server:
        """The server with the fewest requests in flight, ties taken in turn; servers
        that refused a connection lately, and ``avoid`` (where the last attempt failed),
        only when there is no other."""
        now = time.monotonic()
        up = [s for s in self.servers if s.down_until <= now] or self.servers
        candidates = [s for s in up if s is not avoid] or up
        count = len(self.servers)
        best = min(candidates, key=lambda s: (s.in_flight, (s.index - self._turn) % count))
        self._turn = (best.index + 1) % count
        return best

    def bench(self, server: _Server) -> None:
        """Leave ``server`` out for a while (it refused a connection)."""
        server.down_until = time.monotonic() + _BENCH_SECONDS

    async def close(self) -> None:
        for server in self.servers:
            await server.client.close()


class OpenAIBackend(LLM):
    """Chat completions over HTTP with concurrency, retries and a rate cap."""

    scheme = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        rpm: float = 0.0,
        timeout: float = 60.0,
        max_retries: int = 5,
        retry: RetryPolicy | None = None,
        cache: bool = True,
        cache_dir: str | None = None,
        **_: Any,
    ) -> None:
        super().__init__(model, cache=cache, cache_dir=cache_dir)
        #: The servers, in the order given (one, or several serving the same model).
        self.base_urls = parse_base_urls(
            base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL, "base_url"
        )
        self.base_url = ",".join(self.base_urls)
        self.api_key_env = api_key_env
        self.concurrency = max(1, concurrency)
        self.batch_size = self.concurrency * 8
        #: Stream requests through a window (True) or send them batch by batch, each
        #: batch drained before the next starts (False: the old way, a benchmark peer).
        self.streaming = True
        self.rpm = rpm
        self.limiter = RateLimiter(rpm)
        self.timeout = timeout
        self.retry = retry or RetryPolicy(max_retries=max_retries)
        #: The reply-length field: ``max_tokens``, or ``max_completion_tokens`` once the
        #: server says it wants that one (OpenAI's reasoning models).
        self.token_limit_field = "max_tokens"

    def identity(self) -> dict[str, Any]:
        """The model and the set of servers (sorted: neither the order given nor the
        server that answered a request changes a cache key)."""
        return {
            "backend": self.scheme,
            "model": self.model,
            "base_url": ",".join(sorted(self.base_urls)),
        }

    def _api_key(self) -> str:
        key = os.environ.get(self.api_key_env, "")
        if key:
            return key
        if OPENAI_URL in self.base_urls:
            raise AugtoolError(
                f"{self.api_key_env} is not set; export your API key to use {OPENAI_URL}"
            )
        return "not-needed"  # local servers usually accept any key

    def _client(self, base_url: str) -> Any:
        from openai import AsyncOpenAI

        return AsyncOpenAI(
            api_key=self._api_key(), base_url=base_url, max_retries=0, timeout=self.timeout
        )

    def _pool(self) -> _Pool:
        return _Pool(self.base_urls, self._client)

    def _where(self, server: _Server) -> str:
        """A failure's prefix naming the server, when there are several."""
        return f"{redact_url(server.url)}: " if len(self.base_urls) > 1 else ""

    def check(self) -> None:
        """Reach every server once before the run: a clear error naming the server that
        fails instead of N retries per row (a pool with a dead server is refused, not
        silently run at part speed)."""
        asyncio.run(self._check_all())

    async def _check_all(self) -> None:
        problems = await asyncio.gather(*(self._check(url) for url in self.base_urls))
        for problem in problems:
            if problem is not None:
                raise AugtoolError(problem)

    async def _check(self, base_url: str) -> str | None:
        """Why ``base_url`` cannot serve this run, or ``None``."""
        import openai

        url = redact_url(base_url)
        client = self._client(base_url)
        try:
            await client.models.with_raw_response.list(timeout=min(self.timeout, 10.0))
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            return f"--base-url {url}: cannot reach the server ({_reason(exc)})"
        except openai.AuthenticationError:
            if os.environ.get(self.api_key_env):
                return f"{url} rejected the API key in {self.api_key_env}"
            return f"{url} requires an API key: set {self.api_key_env}"
        except openai.PermissionDeniedError:
            return (
                f"{url}: the API key in {self.api_key_env} is not allowed to list "
                "models (permission denied)"
            )
        except openai.APIStatusError:
            pass  # reachable; not every compatible server implements /models
        finally:
            await client.close()
        return None

    def generate_batch(
        self, prompts: list[Prompt], params: GenerationParams, seeds: list[int]
    ) -> list[str | Failure]:
        return asyncio.run(self._generate_all(prompts, params, seeds))

    def run_uncached(self, work: Uncached) -> None:
        """Keep ``concurrency`` requests in flight until the work is done: a new request
        starts as soon as any finishes (one slow reply no longer idles the server, as
        waiting for a whole batch did), and finished results are delivered in input
        order as soon as everything before them is in."""
        if not self.streaming:
            super().run_uncached(work)
            return
        asyncio.run(self._stream(work))

    async def _stream(self, work: Uncached) -> None:
        todo, budget = work.todo, work.budget
        pool = self._pool()
        gate = asyncio.Semaphore(self.concurrency)
        window = self.concurrency * 2  # started ahead of the gate: no gap between requests
        position_of: dict[asyncio.Task, int] = {}
        ready: dict[int, Result] = {}
        launched = flushed = 0
        stopped = False
        try:
            while True:
                while not stopped and launched < len(todo) and len(position_of) < window:
                    index = todo[launched]
                    if budget is not None:
                        try:
                            budget.take([index])
                        except RequestBudgetExhausted:
                            stopped = True  # generate() raises once the rest is in
                            break
                    task = asyncio.create_task(
                        self._one(pool, gate, work.prompts[index], work.params, work.seeds[index])
                    )
                    position_of[task] = launched
                    launched += 1
                if not position_of:
                    break
                done, _ = await asyncio.wait(position_of, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    position = position_of.pop(task)
                    ready[position] = task.result()
                    work.store(todo[position], ready[position])  # cached even if not written
                start = flushed
                while flushed in ready:
                    flushed += 1
                if flushed > start:
                    positions = range(start, flushed)
                    work.deliver([todo[p] for p in positions], [ready.pop(p) for p in positions])
        finally:
            for task in position_of:
                task.cancel()
            await pool.close()

    async def _generate_all(
        self, prompts: list[Prompt], params: GenerationParams, seeds: list[int]
    ) -> list[str | Failure]:
        pool = self._pool()
        gate = asyncio.Semaphore(self.concurrency)
        try:
            return list(
                await asyncio.gather(
                    *[
                        self._one(pool, gate, prompt, params, seed)
                        for prompt, seed in zip(prompts, seeds, strict=True)
                    ]
                )
            )
        finally:
            await pool.close()

    async def _one(
        self,
        pool: _Pool,
        gate: asyncio.Semaphore,
        prompt: Prompt,
        params: GenerationParams,
        seed: int,
    ) -> str | Failure:
        """One request, retried (on another server of a pool when there is one)."""
        import openai

        attempt = 0
        failed_on: _Server | None = None
        while True:
            async with gate:
                await self.limiter.wait()
                server = pool.pick(avoid=failed_on)
                server.in_flight += 1
                try:
                    response = await server.client.chat.completions.create(
                        model=self.model,
                        messages=as_messages(prompt),
                        temperature=params.temperature,
                        top_p=params.top_p,
                        seed=seed,
                        **{self.token_limit_field: params.max_new_tokens},
                    )
                    content = response.choices[0].message.content if response.choices else None
                    return content.strip() if content else Failure("empty reply")
                except (openai.APITimeoutError, openai.APIConnectionError) as exc:
                    error, retry_after = f"{type(exc).__name__}: {_reason(exc)}", None
                    if not isinstance(exc, openai.APITimeoutError):
                        pool.bench(server)  # refused or unreachable, not just slow
                except openai.APIStatusError as exc:
                    error = f"HTTP {exc.status_code}: {_reason(exc)}"
                    if self.token_limit_field == "max_tokens" and _mentions_completion_tokens(exc):
                        # Newer (reasoning) models reject max_tokens: use the field they
                        # name, for this request and every later one; not a retry.
                        self.token_limit_field = "max_completion_tokens"
                        continue
                    if exc.status_code < 500 and exc.status_code not in _RETRYABLE_STATUS:
                        return Failure(self._where(server) + error)
                    retry_after = retry_after_header(exc.response.headers)
                finally:
                    server.in_flight -= 1
            failed_on = server
            error = self._where(server) + error
            if attempt >= self.retry.max_retries:
                return Failure(f"{error} (gave up after {attempt + 1} attempts)")
            await asyncio.sleep(self.retry.delay(attempt, retry_after))
            attempt += 1


def _mentions_completion_tokens(exc: Any) -> bool:
    body = getattr(exc, "body", None)
    text = json.dumps(body) if body is not None else str(exc)
    return exc.status_code == 400 and "max_completion_tokens" in text


def _reason(exc: BaseException) -> str:
    """A short, key-free reason for an API error."""
    cause = exc.__cause__ or exc.__context__
    text = str(cause or exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
