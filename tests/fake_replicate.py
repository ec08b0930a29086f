"""A loopback server that speaks Replicate's predictions API, for tests through the official client.

- ``POST /v1/models/{owner}/{name}/predictions`` (``Prefer: wait=N`` answers with the finished
  prediction, or after N seconds (60 for a bare ``wait``) with the prediction as it is then, as
  Replicate does; ``slow_models`` answer ``starting`` and finish after two polls)
- ``GET /v1/predictions/{id}``, ``POST /v1/predictions/{id}/cancel`` (``stuck_models`` never finish)
- ``GET /files/{id}.png|.mp4``: the outputs (an image drawn from the prompt's hash; a clip made with
  ffmpeg from the input image, at the model's own size and 24 fps, so normalisation is exercised)

Faults: ``p_429`` (with ``Retry-After``), ``p_500``, ``next_statuses`` (forced answers, in order),
``failing_models`` (predictions end ``failed``),
``malformed_models`` (succeed without an output URL), ``echo_auth_errors`` (a 500's detail quotes
the request's Authorization header, as some proxies do), ``finish_after_s`` (``slow_models``
finish by themselves that long after their creation, polled or not, as a real model does).
Accounting: each prediction's creation and end times (``max_in_flight``: the most predictions of a
model in flight at once). Output files: ``file_redirect`` (answer
with a redirect there instead), ``file_bytes`` (send that many bytes instead, ``file_hide_length``:
without a Content-Length), ``file_trickle_s`` (one byte per that many seconds). Every request is
logged with its headers.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import random
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from PIL import Image, ImageDraw

from video_assets.media.ffmpeg_bin import run_ffmpeg


@dataclass
class FakeReplicate:
    token: str
    p_429: float = 0.0
    p_500: float = 0.0
    retry_after_s: float = 0.05
    failing_models: set[str] = field(default_factory=set)
    malformed_models: set[str] = field(default_factory=set)
    slow_models: set[str] = field(default_factory=set)
    stuck_models: set[str] = field(default_factory=set)  # predictions that never finish
    next_statuses: list[int] = field(default_factory=list)  # forced answers to the next creates
    fail_first_image: bool = False  # every video prediction from the first image seen fails
    echo_auth_errors: bool = False  # a 500 quotes the Authorization header it was sent
    file_redirect: str = ""  # output files answer 302 to this URL
    file_bytes: int = 0  # output files are this many bytes of zeros instead
    file_hide_length: bool = False  # ... sent without a Content-Length (read until closed)
    file_trickle_s: float = 0.0  # output files are sent one byte per this many seconds
    finish_after_s: float = 0.0  # > 0: slow_models finish on their own after this long
    seed: int = 7
    predictions: dict[str, dict] = field(default_factory=dict)
    created: list[tuple[str, str]] = field(default_factory=list)  # (model, prediction id)
    requests: list[dict] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.rng = random.Random(self.seed)
        self.folder = Path(tempfile.mkdtemp(prefix="fake-replicate-"))

    # --- serving ---------------------------------------------------------------------------
    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, code: int, body: object, headers: dict | None = None,
                      raw: bytes | None = None, ctype: str = "application/json") -> None:
                data = raw if raw is not None else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                fake.log(self, b"")
                m = re.fullmatch(r"/v1/predictions/([\w-]+)", self.path)
                if m:
                    return self._prediction_get(m.group(1))
                m = re.fullmatch(r"/files/([\w.-]+)", self.path)
                if m and m.group(1) in fake.files and fake.file_redirect:
                    return self._send(302, None, {"Location": fake.file_redirect}, raw=b"")
                if m and m.group(1) in fake.files and (fake.file_bytes or fake.file_trickle_s):
                    return self._odd_file(fake.files[m.group(1)])
                if m and m.group(1) in fake.files:
                    ctype = "image/png" if m.group(1).endswith(".png") else "video/mp4"
                    return self._send(200, None, raw=fake.files[m.group(1)], ctype=ctype)
                self._send(404, {"detail": "not found", "status": 404})

            def _odd_file(self, data: bytes) -> None:
                size = fake.file_bytes or len(data)
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                if not fake.file_hide_length:
                    self.send_header("Content-Length", str(size))
                self.end_headers()
                try:
                    if fake.file_trickle_s:
                        for i in range(size):
                            self.wfile.write(data[i:i + 1] or b"\0")
                            self.wfile.flush()
                            time.sleep(fake.file_trickle_s)
                    else:
                        for start in range(0, size, 1 << 16):
                            self.wfile.write(bytes(min(1 << 16, size - start)))
                except OSError:  # the client hung up, as it should
                    pass

            def _prediction_get(self, pid: str) -> None:
                with fake.lock:
                    p = fake.predictions.get(pid)
                    if p is None:
                        return self._send(404, {"detail": "prediction not found", "status": 404})
                    if p["status"] in ("starting", "processing") \
                            and p["model"] not in fake.stuck_models and not p.get("_finishing"):
                        p["_polls"] += 1
                        if p["_polls"] >= 2:
                            fake.finish(p)
                            fake.ended(p)
                        else:
                            p["status"] = "processing"
                    body = fake.public(p)
                self._send(200, body)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                fake.log(self, raw)
                if self.headers.get("Authorization") != f"Bearer {fake.token}":
                    return self._send(401, {"detail": "invalid token", "status": 401})
                m = re.fullmatch(r"/v1/predictions/([\w-]+)/cancel", self.path)
                if m:
                    with fake.lock:
                        p = fake.predictions.get(m.group(1))
                        if p and p["status"] not in ("succeeded", "failed", "canceled"):
                            p["status"] = "canceled"
                            fake.ended(p)
                        body = fake.public(p) if p else {"detail": "not found"}
                    return self._send(200 if p else 404, body)
                m = re.fullmatch(r"/v1/models/([\w.-]+)/([\w.-]+)/predictions", self.path)
                if not m:
                    return self._send(404, {"detail": "no such route", "status": 404})
                with fake.lock:
                    forced = fake.next_statuses.pop(0) if fake.next_statuses else None
                roll = fake.rng.random()
                if forced == 429 or (forced is None and roll < fake.p_429):
                    return self._send(429, {"detail": "rate limited", "status": 429},
                                      {"Retry-After": str(fake.retry_after_s)})
                if forced == 500 or (forced is None and roll < fake.p_429 + fake.p_500):
                    detail = "internal error"
                    if fake.echo_auth_errors:
                        detail += f" for headers {{'authorization': {self.headers['Authorization']!r}}}"
                    return self._send(500, {"detail": detail, "status": 500})
                model = f"{m.group(1)}/{m.group(2)}"
                pid = uuid.uuid4().hex[:16]
                p = {"id": pid, "model": model, "version": "v1", "status": "starting",
                     "input": json.loads(raw or b"{}").get("input", {}), "output": None,
                     "error": None, "logs": "", "_polls": 0, "_created_s": time.time(),
                     "urls": {"get": f"{fake.base_url}/v1/predictions/{pid}",
                              "cancel": f"{fake.base_url}/v1/predictions/{pid}/cancel"}}
                with fake.lock:
                    fake.predictions[pid] = p
                    fake.created.append((model, pid))
                if model in fake.slow_models and fake.finish_after_s > 0:
                    p["_finishing"] = True  # finishes on its own time, polled or not
                    timer = threading.Timer(fake.finish_after_s, fake.finish_safely, args=(p,))
                    timer.daemon = True
                    timer.start()
                prefer = re.fullmatch(r"wait(?:=(\d+))?", (self.headers.get("Prefer") or "").strip())
                if model not in fake.slow_models | fake.stuck_models and prefer:
                    p["_finishing"] = True  # polls leave it to this thread
                    worker = threading.Thread(target=fake.finish_safely, args=(p,), daemon=True)
                    worker.start()
                    worker.join(float(prefer.group(1) or 60))
                with fake.lock:
                    body = fake.public(p)
                self._send(201, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self.base_url

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- behaviour -------------------------------------------------------------------------
    def log(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        with self.lock:
            self.requests.append({"method": handler.command, "path": handler.path,
                                  "headers": dict(handler.headers), "body": body[:2000]})

    @staticmethod
    def public(p: dict) -> dict:
        return {k: v for k, v in p.items() if not k.startswith("_")}

    def finish_safely(self, p: dict) -> None:
        try:
            if p["status"] != "canceled":
                self.finish(p)
        except Exception as exc:  # a broken fake output is a failed prediction, not a hang
            p.update(status="failed", error=f"fake server: {exc}"[:300])
        with self.lock:
            self.ended(p)

    @staticmethod
    def ended(p: dict) -> None:
        """Note when the prediction reached its end (the first time: an end is final)."""
        if p["status"] in ("succeeded", "failed", "canceled"):
            p.setdefault("_ended_s", time.time())

    def finish(self, p: dict) -> None:
        model = p["model"]
        image = p["input"].get("start_image") or p["input"].get("image") or ""
        if self.fail_first_image and image:
            digest = hashlib.sha256(image.encode()).hexdigest()
            with self.lock:  # clips arrive from several threads: the first one seen is doomed
                self.doomed = getattr(self, "doomed", None) or digest
            if digest == self.doomed:
                p.update(status="failed", error="NSFW filter (injected)")
                return
        if model in self.failing_models:
            p.update(status="failed", error="CUDA out of memory (injected)")
            return
        if model in self.malformed_models:
            p.update(status="succeeded", output=None)
            return
        kind = kind_of(p["input"])
        name = f"{p['id']}.{ {'image': 'png', 'music': 'wav'}.get(kind, 'mp4') }"
        make = {"image": self.image, "video": self.video, "music": self.music,
                "lipsync": self.lipsync}[kind]
        self.files[name] = make(p["input"])
        url = f"{self.base_url}/files/{name}"
        p.update(status="succeeded", output=[url] if kind == "image" else url)

    def image(self, inputs: dict) -> bytes:
        aspect = inputs.get("aspect_ratio", "9:16")
        w, h = {"9:16": (576, 1024), "16:9": (1024, 576), "1:1": (768, 768)}.get(aspect, (576, 1024))
        # a diffusion model's picture depends on the prompt and the seed
        digest = hashlib.sha256(f"{inputs.get('prompt')}|{inputs.get('seed')}".encode()).digest()
        img = Image.new("RGB", (w, h), tuple(digest[:3]))
        draw = ImageDraw.Draw(img)
        for i in range(24):  # shapes, so the picture has detail (sharpness) and identity
            x, y = digest[i % 32] * w // 256, digest[(i + 7) % 32] * h // 256
            r = 20 + digest[(i + 3) % 32] % 90
            draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(digest[(i + 1) % 30:(i + 1) % 30 + 3]))
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return buf.getvalue()

    def video(self, inputs: dict) -> bytes:
        uri = inputs.get("start_image") or inputs.get("first_frame_image") or inputs.get("image")
        png = base64.b64decode(uri.split(",", 1)[1])
        duration = float(inputs.get("duration", 5))
        work = Path(tempfile.mkdtemp(dir=self.folder))
        (work / "in.png").write_bytes(png)
        with Image.open(work / "in.png") as im:  # the model's own size, at the image's aspect
            w, h = (360, 640) if im.height > im.width else (640, 360) if im.width > im.height \
                else (480, 480)
        run_ffmpeg(["-y", "-loop", "1", "-i", str(work / "in.png"), "-t", f"{duration:g}",
                    "-vf", f"scale={w * 2}:{h * 2},zoompan=z='1+0.0015*on':d=1:s={w}x{h}:fps=24",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                    str(work / "out.mp4")], what="making a fake model clip")
        return (work / "out.mp4").read_bytes()

    def music(self, inputs: dict) -> bytes:
        from video_assets.media.audio import synthesize_track, write_wav

        work = Path(tempfile.mkdtemp(dir=self.folder))
        write_wav(work / "music.wav", synthesize_track(float(inputs["duration"]), tempo_bpm=100.0),
              32000)  # musicgen's own rate: the pipeline resamples
        return (work / "music.wav").read_bytes()

    def lipsync(self, inputs: dict) -> bytes:
        """The input clip with the audio muxed in (what a lip-sync model returns)."""
        work = Path(tempfile.mkdtemp(dir=self.folder))
        (work / "in.mp4").write_bytes(base64.b64decode(inputs["video"].split(",", 1)[1]))
        (work / "in.wav").write_bytes(base64.b64decode(inputs["audio"].split(",", 1)[1]))
        run_ffmpeg(["-y", "-i", str(work / "in.mp4"), "-i", str(work / "in.wav"), "-c:v", "copy",
                    "-c:a", "aac", "-shortest", str(work / "out.mp4")], what="fake lip-sync")
        return (work / "out.mp4").read_bytes()

    # --- accounting ------------------------------------------------------------------------
    def succeeded(self, kind: str = "") -> list[dict]:
        with self.lock:
            return [p for p in self.predictions.values() if p["status"] == "succeeded"
                    and (not kind or kind_of(p["input"]) == kind)]

    def max_in_flight(self) -> dict[str, int]:
        """Per model, the most predictions in flight at once (created, not yet ended; one still
        running counts until now)."""
        with self.lock:
            spans = [(p["model"], p["_created_s"], p.get("_ended_s", time.time()))
                     for p in self.predictions.values()]
        most: dict[str, int] = {}
        for model in {m for m, _, _ in spans}:
            edges = sorted([(s, 1) for m, s, _ in spans if m == model]
                           + [(e, -1) for m, _, e in spans if m == model], key=lambda x: (x[0], x[1]))
            now = 0
            for _, step in edges:  # at equal times an end is counted before a start
                now += step
                most[model] = max(most.get(model, 0), now)
        return most

    def posts(self) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r["method"] == "POST")


def kind_of(inputs: dict) -> str:
    if "video" in inputs and "audio" in inputs:
        return "lipsync"
    if any(k in inputs for k in ("image", "start_image", "first_frame_image")):
        return "video"
    if "duration" in inputs and "aspect_ratio" not in inputs:
        return "music"
    return "image"


@contextlib.contextmanager
def serving(server: FakeReplicate, **env: str | None) -> Iterator[FakeReplicate]:
    """Start ``server`` and point the product at it for a block: its token, its base URL, and
    plain http to loopback allowed (its files are served over http). ``env``: more variables to
    set (``None`` unsets one)."""
    from tests.conftest import scoped_env

    base = server.start()
    try:
        with scoped_env({"REPLICATE_API_TOKEN": server.token, "REPLICATE_BASE_URL": base,
                         "VIDEO_ASSETS_ALLOW_LOOPBACK_HTTP": "1", **env}):
            yield server
    finally:
        server.stop()
