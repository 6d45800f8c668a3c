r"""A loopback OpenAI-compatible server whose echo log-probabilities are RIGHT.

The three servers of the endpoint tests, side by side:

- `tests/llama_server.py` (`LlamaServer`): llama-cpp-python's real server. Generation and chat
  are real; its `echo` prompt log-probabilities are shifted by one position (llama-cpp-python
  0.3.36 scores token i with the distribution *after* token i), so a correctness probe must
  refuse it for log-likelihood suites.
- `tests/fake_openai.py` (`FakeOpenAI`): scripted misbehaviour (429, 500, hangs, garbage,
  ignored `echo`), no model.
- this file (`EchoServer`): the bundled SmolLM2 GGUF through the in-process llama.cpp backend
  (`harness.models.llamacpp`, `Llama.eval` + `scores`), so prompt log-probabilities are exactly
  what `llamacpp:` computes: the positive path of `openai:` log-likelihood and perplexity.

Start it (a real server in a subprocess, stopped by PID)::

    with EchoServer(aliases=("smollm2", "candidate")) as srv:   # or the `echo_server` fixture
        srv.base_url            # http://127.0.0.1:PORT/v1
        srv.requests()          # {"completions": n, "chat": n, "models": n}: cache-hit proofs

    python -m tests.echo_server --port 8000 --alias smollm2 [--alias candidate] [--n-threads 2]

Every alias serves the same weights (a "candidate" for gate tests without a second model).

Endpoints: `GET /v1/models`; `POST /v1/completions` (OpenAI legacy): `prompt` as a string,
a token-id list, or a list of either (one choice each, in order); `max_tokens` (default 16,
0 = score only), `temperature` (default 1.0 as OpenAI; 0 = greedy), `top_p`, `seed`, `stop`,
`echo`, `logprobs=N` (0..20); `POST /v1/chat/completions`: messages rendered with the GGUF's
chat template, `logprobs`/`top_logprobs` in the chat format. `stream` is refused (400).
`GET /tunegate/requests` counts calls (not part of the OpenAI API).

`choices[i].logprobs` (legacy completions, as OpenAI and vLLM): `tokens`, `token_logprobs`,
`top_logprobs` (N most likely {token text: logprob} at each position) and `text_offset`, over the
prompt tokens (with `echo`) followed by the generated ones. Token i is scored with the
distribution after tokens 0..i-1; the first prompt token has no context, so its logprob and
top_logprobs are null (as OpenAI). To have the first token scored the way `llamacpp:` and
transformers score a text (predicted from BOS), start the prompt with the BOS token's text
(`<|im_start|>` for SmolLM2): special-token texts are parsed into their ids. A prompt is
tokenized exactly as `llamacpp:` tokenizes it (BOS added only if the GGUF asks for it; SmolLM2
does not). A token's text is the characters it completes: a byte-level token that ends inside a
UTF-8 character has text "" and the character goes to the token that completes it, so
`"".join(tokens)` is the echoed text; `text_offset[i]` is the character offset where token i's
text begins in prompt + completion (also without echo).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.llama_server import LLAMA_THREADS, free_port, stop_process, wait_until_serving

ROOT = Path(__file__).resolve().parent.parent


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code = status, code


class Engine:
    """OpenAI request bodies → responses, over one in-process llama.cpp backend (one lock)."""

    def __init__(self, model: Path, aliases: list[str], n_threads: int, n_ctx: int | None) -> None:
        from harness.models import resolve_model
        from harness.models.llamacpp import LlamaCppBackend

        spec = f"llamacpp:{model}?n_threads={n_threads}" + (f"&n_ctx={n_ctx}" if n_ctx else "")
        self.backend = LlamaCppBackend(resolve_model(spec))
        self.aliases = aliases
        self.lock = threading.Lock()
        self.counts = {"completions": 0, "chat": 0, "models": 0}

    def models(self) -> dict[str, Any]:
        self.counts["models"] += 1
        fp = self.backend.resolved.fingerprint
        entry = {"object": "model", "created": 0, "owned_by": "tunegate-tests", "fingerprint": fp}
        return {"object": "list", "data": [{"id": a, **entry} for a in self.aliases]}

    def _check_model(self, body: dict[str, Any]) -> str:
        model = body.get("model")
        if model not in self.aliases:
            raise BadRequest(f"The model `{model}` does not exist", 404, "model_not_found")
        if body.get("stream"):
            raise BadRequest("stream is not supported by this test server")
        return model

    # -- completions ----------------------------------------------------------------------
    def completions(self, body: dict[str, Any]) -> dict[str, Any]:
        model = self._check_model(body)
        self.counts["completions"] += 1
        prompts = body.get("prompt", "")
        if isinstance(prompts, str) or (prompts and all(isinstance(t, int) for t in prompts)):
            prompts = [prompts]
        if not isinstance(prompts, list) or not prompts:
            raise BadRequest("prompt must be a string, a token list, or a list of those")
        n_top = body.get("logprobs")
        if n_top is not None and (not isinstance(n_top, int) or not 0 <= n_top <= 20):
            raise BadRequest("logprobs must be an integer between 0 and 20")
        echo = bool(body.get("echo", False))
        choices, n_in, n_out = [], 0, 0
        with self.lock:
            for index, prompt in enumerate(prompts):
                choice, pt, ct = self._complete(prompt, body, echo, n_top)
                choices.append({"index": index, **choice})
                n_in, n_out = n_in + pt, n_out + ct
        return _envelope("text_completion", model, choices, n_in, n_out)

    def _complete(
        self, prompt: Any, body: dict[str, Any], echo: bool, n_top: int | None
    ) -> tuple[dict[str, Any], int, int]:
        b = self.backend
        if isinstance(prompt, str):
            ids, prompt_text = b.tokenize(prompt, add_bos=b.vocab._model.add_bos_token()), prompt
        elif isinstance(prompt, list) and all(isinstance(t, int) for t in prompt):
            ids, prompt_text = list(prompt), b.detokenize(prompt).decode("utf-8", errors="ignore")
        else:
            raise BadRequest("each prompt must be a string or a list of token ids")
        if not ids:
            raise BadRequest("the prompt is empty")
        gen, finish = self._generate(ids, body)
        all_ids = ids + gen
        texts, offsets = _token_texts(b, all_ids)
        completion = "".join(texts[len(ids) :])
        out: dict[str, Any] = {
            "text": (prompt_text + completion) if echo else completion,
            "finish_reason": finish,
        }
        if n_top is not None:
            first = 0 if echo else len(ids)
            # row j - 1 is the distribution token j was drawn from (eval + scores, unshifted)
            lp = b.token_logprobs(all_ids[:-1]) if len(all_ids) > 1 else None
            rows = []
            for j in range(first, len(all_ids)):
                if j == 0:
                    rows.append((texts[0], None, None, offsets[0]))
                    continue
                row = lp[j - 1]
                top = {}
                for t in row.argsort()[::-1][:n_top]:
                    top.setdefault(b.detokenize([int(t)]).decode("utf-8", errors="replace"), float(row[t]))
                rows.append((texts[j], float(row[all_ids[j]]), top, offsets[j]))
            out["logprobs"] = {
                "tokens": [r[0] for r in rows],
                "token_logprobs": [r[1] for r in rows],
                "top_logprobs": [r[2] for r in rows],
                "text_offset": [r[3] for r in rows],
            }
        else:
            out["logprobs"] = None
        return out, len(ids), len(gen)

    def _generate(self, ids: list[int], body: dict[str, Any]) -> tuple[list[int], str]:
        """Greedy (temperature 0) or sampled tokens from the same eval + scores rows."""
        import llama_cpp
        import numpy as np

        b = self.backend
        max_tokens = body.get("max_tokens", body.get("max_completion_tokens", 16))
        if max_tokens is None:
            max_tokens = b.n_ctx - len(ids)
        if not isinstance(max_tokens, int) or max_tokens < 0:
            raise BadRequest("max_tokens must be a non-negative integer")
        if len(ids) + max_tokens > b.n_ctx:
            raise BadRequest(f"{len(ids)} prompt tokens + max_tokens {max_tokens} exceed n_ctx {b.n_ctx}")
        temperature = float(body.get("temperature", 1.0))
        top_p = float(body.get("top_p", 1.0))
        stops = body.get("stop") or []
        stops = [stops] if isinstance(stops, str) else list(stops)
        rng = np.random.default_rng(body.get("seed"))
        vocab = b.llm._model.vocab
        gen: list[int] = []
        for _ in range(max_tokens):
            row = b.token_logprobs(ids + gen, len(ids) + len(gen) - 1)[0]
            if temperature <= 0:
                token = int(row.argmax())
            else:
                p = np.exp((row - row.max()) / temperature)
                p /= p.sum()
                order = np.argsort(-p)
                keep = order[: int(np.searchsorted(np.cumsum(p[order]), top_p) + 1)]
                token = int(rng.choice(keep, p=p[keep] / p[keep].sum()))
            if llama_cpp.llama_token_is_eog(vocab, token):
                return gen, "stop"
            gen.append(token)
            text = b.detokenize(gen).decode("utf-8", errors="ignore")
            if any(s and s in text for s in stops):
                return _trim_at_stop(b, gen, stops), "stop"
        return gen, "length"

    # -- chat -----------------------------------------------------------------------------
    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        model = self._check_model(body)
        self.counts["chat"] += 1
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("messages must be a non-empty list")
        b = self.backend
        with self.lock:
            ids = b.tokenize(b.render_chat(messages))
            gen, finish = self._generate(ids, body)
            texts, _ = _token_texts(b, ids + gen)
            content = "".join(texts[len(ids) :])
            logprobs = None
            if body.get("logprobs") and gen:
                n_top = int(body.get("top_logprobs") or 0)
                lp = b.token_logprobs(ids + gen[:-1], len(ids) - 1)
                logprobs = {
                    "content": [
                        _chat_logprob(b, lp[k], t, texts[len(ids) + k], n_top) for k, t in enumerate(gen)
                    ]
                }
        choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}
        choice["logprobs"] = logprobs
        return _envelope("chat.completion", model, [choice], len(ids), len(gen))


def _envelope(obj: str, model: str, choices: list[dict[str, Any]], n_in: int, n_out: int) -> dict[str, Any]:
    return {
        "id": f"cmpl-{uuid.uuid4().hex[:12]}",
        "object": obj,
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out},
    }


def _chat_logprob(b: Any, row: Any, token: int, text: str, n_top: int) -> dict[str, Any]:
    top = [
        {
            "token": (t := b.detokenize([int(i)]).decode("utf-8", errors="replace")),
            "logprob": float(row[i]),
            "bytes": list(t.encode()),
        }
        for i in row.argsort()[::-1][:n_top]
    ]
    return {"token": text, "logprob": float(row[token]), "bytes": list(text.encode()), "top_logprobs": top}


def _token_texts(b: Any, ids: list[int]) -> tuple[list[str], list[int]]:
    """Each token's text (the characters it completes) and its character offset."""
    texts, offsets, data, done = [], [], b"", ""
    for t in ids:
        data += b.detokenize([t])
        now = data.decode("utf-8", errors="ignore")
        offsets.append(len(done))
        texts.append(now[len(done) :])
        done = now
    return texts, offsets


def _trim_at_stop(b: Any, gen: list[int], stops: list[str]) -> list[int]:
    # the shortest prefix of generated tokens whose text contains a stop string, minus the
    # tokens that make up the stop (OpenAI does not return the stop sequence)
    for n in range(1, len(gen) + 1):
        text = b.detokenize(gen[:n]).decode("utf-8", errors="ignore")
        if any(s and s in text for s in stops):
            cut = min(text.find(s) for s in stops if s and s in text)
            while n > 0 and len(b.detokenize(gen[:n]).decode("utf-8", errors="ignore")) > cut:
                n -= 1
            return gen[:n]
    return gen


def make_handler(engine: Engine) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections

        def log_message(self, fmt: str, *args: Any) -> None:
            sys.stderr.write(f"{self.address_string()} {fmt % args}\n")

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str, code: str | None = None) -> None:
            self._send(status, {"error": {"message": message, "type": "invalid_request_error", "code": code}})

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, engine.models())
            elif self.path == "/tunegate/requests":
                self._send(200, dict(engine.counts))
            else:
                self._error(404, f"no route {self.path}")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            route = {"/v1/completions": engine.completions, "/v1/chat/completions": engine.chat}.get(
                self.path
            )
            if route is None:
                self._error(404, f"no route {self.path}")
                return
            try:
                body = json.loads(raw or b"{}")
                if not isinstance(body, dict):
                    raise BadRequest("the body must be a JSON object")
                self._send(200, route(body))
            except json.JSONDecodeError as e:
                self._error(400, f"invalid JSON: {e}")
            except BadRequest as e:
                self._error(e.status, str(e), e.code)
            except Exception as e:  # a test server: say what broke instead of hanging up
                self._error(500, f"{type(e).__name__}: {e}")

    return Handler


class EchoServer:
    """`with EchoServer() as srv: srv.base_url` — `python -m tests.echo_server` as a subprocess."""

    def __init__(
        self,
        aliases: tuple[str, ...] = ("smollm2", "candidate"),
        n_threads: int = LLAMA_THREADS,
        n_ctx: int | None = 2048,
        model: Path | None = None,
        log: Path | None = None,
    ) -> None:
        from harness.models.gguf import smollm2_gguf

        self.model = model or smollm2_gguf()
        self.aliases = aliases
        self.n_threads, self.n_ctx = n_threads, n_ctx
        self.port = free_port()
        self.log = log
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def requests(self) -> dict[str, int]:
        """Calls served so far, per endpoint (proves a cached re-run made none)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/tunegate/requests", timeout=5) as r:
            return json.loads(r.read())

    def __enter__(self) -> EchoServer:
        args = [
            sys.executable,
            "-m",
            "tests.echo_server",
            "--model",
            str(self.model),
            "--port",
            str(self.port),
        ]
        args += ["--n-threads", str(self.n_threads)] + (["--n-ctx", str(self.n_ctx)] if self.n_ctx else [])
        for a in self.aliases:
            args += ["--alias", a]
        out = open(self.log, "wb") if self.log else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        wait_until_serving(self.proc, f"{self.base_url}/models", 60, "echo server", self.log)
        return self

    def __exit__(self, *exc: object) -> None:
        stop_process(self.proc)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="GGUF file (default: the bundled SmolLM2)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--alias", action="append", help="served model name (repeatable)")
    ap.add_argument("--n-threads", type=int, default=2)
    ap.add_argument("--n-ctx", type=int, default=2048)
    a = ap.parse_args(argv)
    if a.model is None:
        from harness.models.gguf import smollm2_gguf

        a.model = smollm2_gguf()
    engine = Engine(a.model, a.alias or ["smollm2"], a.n_threads, a.n_ctx)
    server = ThreadingHTTPServer((a.host, a.port), make_handler(engine))
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"serving {a.model.name} as {engine.aliases} on http://{a.host}:{a.port}/v1", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
