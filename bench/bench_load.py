"""`tunegate load`'s own overhead: the highest request rate it sustains against a loopback server
that answers instantly (a streamed reply, pre-built, written in one go), and the same for vLLM's
benchmark client (`vllm bench serve`) when its side environment exists. Open loop at rising
rates: a rate is sustained when the achieved requests/s is >= 95% of it and (tunegate) no request
left more than 100 ms after its scheduled arrival. Also the closed loop's requests/s at 1, 16
and 64 in flight. The server runs in its own process; client and server share the machine's cores.

.venv/bin/python bench/bench_load.py [--duration 3] [--rates 100,200,400,800,1600,3200] [--no-vllm]
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_EVENTS = [
    {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
    {"choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": None}]},
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    {"choices": [], "usage": {"prompt_tokens": 16, "completion_tokens": 1, "total_tokens": 17}},
]
_TEXT_EVENTS = [
    {"choices": [{"index": 0, "text": "ok", "finish_reason": None}]},
    {"choices": [{"index": 0, "text": "", "finish_reason": "stop"}]},
    {"choices": [], "usage": {"prompt_tokens": 16, "completion_tokens": 1, "total_tokens": 17}},
]


def _sse(events: list[dict]) -> bytes:
    base = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "instant"}
    body = (
        b"".join(b"data: " + json.dumps({**base, **e}).encode() + b"\n\n" for e in events)
        + b"data: [DONE]\n\n"
    )
    head = f"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def serve(port: int) -> None:
    """The instant server: HTTP/1.1 keep-alive, one pre-built reply per request."""
    chat, text = _sse(_EVENTS), _sse(_TEXT_EVENTS)
    models = json.dumps({"object": "list", "data": [{"id": "instant", "object": "model"}]}).encode()
    models_reply = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(models)}\r\n\r\n".encode()
        + models
    )

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                first = head.split(b"\r\n", 1)[0]
                writer.write(
                    models_reply if first.startswith(b"GET") else chat if b"/chat/" in first else text
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _suite(folder: Path) -> Path:
    (folder / "data.jsonl").write_text(
        "".join(
            json.dumps({"id": f"q{i}", "q": f"What is {i} + {i}?", "a": str(2 * i)}) + "\n" for i in range(64)
        )
    )
    path = folder / "suite.yaml"
    path.write_text(
        "name: bench-load\nkind: task\ndata: data.jsonl\nprompt: '{{ q }}'\nreference: a\n"
        "generation: {max_new_tokens: 4}\nmetrics: [exact_match]\n"
    )
    return path


def tunegate(url: str, suite: Path, db: Path, levels: list[str]) -> dict:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "tunegate",
            "load",
            "-m",
            f"openai:instant@{url}",
            "-s",
            str(suite),
            *levels,
            "--db",
            str(db),
            "--json",
            "--no-progress",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if r.returncode:
        raise SystemExit(f"tunegate load failed: {r.stderr}")
    return json.loads(r.stdout)


def vllm_python() -> str | None:
    found = sorted(glob.glob(os.path.expanduser("~/.cache/tunegate/venvs/vllm-*/bin/python")))
    return found[-1] if found else None


def vllm_rate(python: str, url: str, rate: float, n: int, tokenizer: str, out: Path) -> dict | None:
    code = (
        "import argparse, asyncio, sys\n"
        "from vllm.benchmarks.serve import add_cli_args, main\n"
        "p = argparse.ArgumentParser(); add_cli_args(p); a = p.parse_args(sys.argv[1:])\n"
        "r = main(a)\n"
        "if asyncio.iscoroutine(r): asyncio.run(r)\n"
    )
    args = [
        "--backend",
        "openai-chat",
        "--base-url",
        url,
        "--endpoint",
        "/v1/chat/completions",
        "--model",
        "instant",
        "--tokenizer",
        tokenizer,
        "--dataset-name",
        "random",
        "--random-input-len",
        "16",
        "--random-output-len",
        "1",
        "--num-prompts",
        str(n),
        "--request-rate",
        str(rate),
        "--seed",
        "1",
        "--disable-tqdm",
        "--save-result",
        "--percentile-metrics",
        "ttft,tpot,itl,e2el",
        "--result-filename",
        str(out),
    ]
    r = subprocess.run(
        [python, "-c", code, *args], capture_output=True, text=True, timeout=900, cwd=out.parent
    )
    if r.returncode or not out.exists():
        print(f"  vllm bench serve failed at {rate:g}/s: {r.stderr.strip().splitlines()[-1:]}")
        return None
    return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--rates", default="100,200,400,800,1600,3200")
    ap.add_argument("--no-vllm", action="store_true")
    args = ap.parse_args()
    port = _free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    url = f"http://127.0.0.1:{port}/v1"
    try:
        time.sleep(1.0)
        with tempfile.TemporaryDirectory() as tmp:
            t = Path(tmp)
            suite = _suite(t)
            print(f"cores: {os.cpu_count()}; load average {os.getloadavg()[0]:.1f} at the start")
            closed = tunegate(url, suite, t / "c.duckdb", ["--concurrency", "1,16,64", "--requests", "3000"])
            print("\n== tunegate load, closed loop against the instant server")
            for lv in closed["levels"]:
                print(
                    f"  {lv['value']:>5g} in flight: {lv['requests_per_s']:8.1f} requests/s, "
                    f"e2e p50 {lv['e2e_p50'] * 1000:.2f} ms, p99 {lv['e2e_p99'] * 1000:.2f} ms"
                )
            opened = tunegate(
                url, suite, t / "o.duckdb", ["--rate", args.rates, "--duration", str(args.duration)]
            )
            print("\n== tunegate load, open loop (Poisson) against the instant server")
            best = 0.0
            for lv in opened["levels"]:
                lag = lv["summary"]["max_send_lag_s"]
                ok = lv["requests_per_s"] >= 0.95 * lv["value"] and lag <= 0.1 and not lv["n_errors"]
                best = max(best, lv["value"]) if ok else best
                print(
                    f"  {lv['value']:>6g}/s: achieved {lv['requests_per_s']:8.1f}/s, max send lag "
                    f"{lag * 1000:7.1f} ms, e2e p99 {lv['e2e_p99'] * 1000:7.2f} ms  "
                    f"{'sustained' if ok else 'NOT sustained'}"
                )
            print(f"tunegate load sustains {best:g} requests/s on this machine")
            py = vllm_python()
            if args.no_vllm or py is None:
                print(
                    "\nvLLM's client: " + ("skipped (--no-vllm)" if args.no_vllm else "no vLLM environment")
                )
                return
            from harness.models.gguf import converted_folder, smollm2_gguf

            tokenizer = str(converted_folder(smollm2_gguf()))
            print("\n== vllm bench serve (openai-chat, random 16-token prompts) against the instant server")
            vbest = 0.0
            for rate in [float(x) for x in args.rates.split(",")]:
                got = vllm_rate(py, url, rate, int(rate * args.duration), tokenizer, t / f"v{rate:g}.json")
                if got is None:
                    break
                ok = got["request_throughput"] >= 0.95 * rate and got["completed"] == int(
                    rate * args.duration
                )
                vbest = max(vbest, rate) if ok else vbest
                print(
                    f"  {rate:>6g}/s: achieved {got['request_throughput']:8.1f}/s, "
                    f"completed {got['completed']}, "
                    f"e2e p99 {got.get('p99_e2el_ms', float('nan')):7.2f} ms  "
                    f"{'sustained' if ok else 'NOT sustained'}"
                )
                if not ok:
                    break
            print(f"vllm bench serve sustains {vbest:g} requests/s on this machine")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]))
    else:
        main()
