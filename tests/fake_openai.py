"""A loopback server that speaks the OpenAI endpoints the pipeline uses, for tests through the
official ``openai`` client (``OPENAI_BASE_URL``); the client's httpx2 transport is real HTTP.

- ``POST /v1/chat/completions`` with a ``json_schema`` response format: a plan with one scene
  per segment of the brief (the user message), the segment's sung words as its caption;
  ``usage`` counts about 4 characters per token, like the real API's order of magnitude.
- ``POST /v1/audio/transcriptions`` (multipart, ``verbose_json``, word timestamps): ``words``.
- ``POST /v1/audio/speech``: a WAV of a tone, 55 ms per character.

The plan's ``palette`` and ``caption_chars`` (captions padded with words to that length) are settable; a
response format whose schema strict mode would refuse (an object without
``additionalProperties: false`` or with a property not ``required``) is answered 400, as the real
API does. Faults: ``p_429`` (with ``Retry-After``), ``p_500``, ``bad_plans`` (the next N plans have
one scene too few), ``bad_cameras`` (the next N plans have a camera move that does not exist).
Every request is logged.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import threading
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

CAMERAS = ["push_in", "pan_left", "pull_out", "pan_right", "static", "tilt_up"]


@dataclass
class FakeOpenAI:
    key: str
    words: list[tuple[str, float, float]] = field(default_factory=list)
    p_429: float = 0.0
    p_500: float = 0.0
    retry_after_s: float = 0.05
    bad_plans: int = 0
    bad_cameras: int = 0
    palette: list[str] = field(default_factory=lambda: ["#101820", "#f2aa4c", "#e8e8e8"])
    caption_chars: int = 0  # pad every caption to this many characters
    seed: int = 11
    requests: list[dict] = field(default_factory=list)
    usage: list[dict] = field(default_factory=list)  # per successful chat completion

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.rng = random.Random(self.seed)

    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _send(self, code: int, body: object = None, raw: bytes | None = None,
                      ctype: str = "application/json", headers: dict | None = None) -> None:
                data = raw if raw is not None else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _error(self, code: int, message: str, headers: dict | None = None) -> None:
                self._send(code, {"error": {"message": message, "type": "fake", "code": code}},
                           headers=headers)

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with fake.lock:
                    fake.requests.append({"path": self.path, "headers": dict(self.headers),
                                          "body": raw})
                    roll = fake.rng.random()
                if self.headers.get("Authorization") != f"Bearer {fake.key}":
                    return self._error(401, "invalid api key")
                if roll < fake.p_429:
                    return self._error(429, "rate limited",
                                       {"Retry-After": str(fake.retry_after_s)})
                if roll < fake.p_429 + fake.p_500:
                    return self._error(500, "internal error")
                if self.path == "/v1/chat/completions":
                    body = json.loads(raw)
                    problem = strict_schema_problem(body["response_format"]["json_schema"]["schema"])
                    if problem:
                        return self._error(400, f"Invalid schema for response_format: {problem}")
                    return self._send(200, fake.chat(body))
                if self.path == "/v1/audio/transcriptions":
                    return self._send(200, fake.transcription(raw))
                if self.path == "/v1/audio/speech":
                    return self._send(200, raw=fake.speech(json.loads(raw)), ctype="audio/wav")
                self._error(404, f"no route {self.path}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self.base_url

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- endpoints ---------------------------------------------------------------------------
    def chat(self, body: dict) -> dict:
        assert body["response_format"]["type"] == "json_schema", body["response_format"]
        assert body["response_format"]["json_schema"]["strict"] is True
        brief = json.loads(next(m["content"] for m in body["messages"] if m["role"] == "user"))
        segments = brief["segments"]
        with self.lock:
            bad, bad_camera = self.bad_plans > 0, self.bad_cameras > 0
            self.bad_plans -= bad
            self.bad_cameras -= bad_camera
        if bad:
            segments = segments[:-1]
        scenes = [{"prompt": f"shot {s['index'] + 1} of {brief['prompt']}",
                   "caption": pad_words(s.get("words") or f"line {s['index'] + 1}",
                                        self.caption_chars),
                   "camera": CAMERAS[s["index"] % len(CAMERAS)],
                   "motion": "energetic" if s["energy"] > 0.5 else "slow drift",
                   "transition": "cut"} for s in segments]
        if bad_camera:
            scenes[0]["camera"] = "barrel_roll"
        plan = {"summary": f"{len(scenes)} scenes: {brief['prompt']}", "archetype": "journey",
                "style": {"palette_hex": list(self.palette),
                          "lighting": "lantern glow", "mood": "calm"},
                "characters": [{"name": "the boatman", "description": "a figure in a hood"}],
                "scenes": scenes}
        content = json.dumps(plan)
        usage = {"prompt_tokens": len(json.dumps(body["messages"])) // 4,
                 "completion_tokens": len(content) // 4}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        with self.lock:
            self.usage.append(usage)
        return {"id": f"chatcmpl-{len(self.usage)}", "object": "chat.completion",
                "created": int(time.time()), "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": content,
                                         "refusal": None}}],
                "usage": usage}

    def transcription(self, multipart: bytes) -> dict:
        for needed in (b'name="model"', b"whisper-1", b'name="response_format"', b"verbose_json",
                       b'name="timestamp_granularities[]"', b"word", b'name="file"'):
            assert needed in multipart, needed
        words = [{"word": w, "start": s, "end": e} for w, s, e in self.words]
        return {"task": "transcribe", "language": "english",
                "duration": max((e for _, _, e in self.words), default=0.0),
                "text": " ".join(w for w, _, _ in self.words), "words": words}

    def speech(self, body: dict) -> bytes:
        n = int(24000 * 0.055 * len(body["input"]))
        t = np.arange(n) / 24000
        samples = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2")
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(24000)
            w.writeframes(samples.tobytes())
        return buf.getvalue()

    def paths(self) -> list[str]:
        with self.lock:
            return [r["path"] for r in self.requests]


def pad_words(text: str, chars: int) -> str:
    """``text`` followed by " la" until it is at least ``chars`` characters long."""
    while len(text) < chars:
        text += " la"
    return text


def strict_schema_problem(schema: dict, where: str = "schema") -> str:
    """What strict structured outputs would refuse in ``schema`` ("" when nothing): every object
    must forbid additional properties and require all of its properties."""
    if isinstance(schema, list):
        return next((p for i, item in enumerate(schema)
                     if (p := strict_schema_problem(item, f"{where}[{i}]"))), "")
    if not isinstance(schema, dict):
        return ""
    if schema.get("type") == "object":
        if schema.get("additionalProperties") is not False:
            return f"{where}: 'additionalProperties' is required to be supplied and to be false"
        missing = set(schema.get("properties", {})) - set(schema.get("required", []))
        if missing:
            return f"{where}: 'required' is missing {sorted(missing)}"
    for key, value in schema.items():
        if key in ("properties", "$defs"):
            for name, sub in value.items():
                if problem := strict_schema_problem(sub, f"{where}.{key}.{name}"):
                    return problem
        elif key in ("items", "anyOf", "allOf") and (
                problem := strict_schema_problem(value, f"{where}.{key}")):
            return problem
    return ""


@contextlib.contextmanager
def serving(server: FakeOpenAI, **env: str | None) -> Iterator[FakeOpenAI]:
    """Start ``server`` and point the product at it for a block (its key and base URL; no
    Replicate token, so the other capabilities stay offline). ``env``: more variables to set
    (``None`` unsets one)."""
    from tests.conftest import scoped_env

    base = server.start()
    try:
        with scoped_env({"OPENAI_API_KEY": server.key, "OPENAI_BASE_URL": base,
                         "REPLICATE_API_TOKEN": None, **env}):
            yield server
    finally:
        server.stop()
