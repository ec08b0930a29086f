"""Run one ``compose()`` in this fresh process; print its wall time and ffmpeg's peak RSS as JSON.

``python -m benchmarks.child_compose SPEC.json``. The only child of this process is the ffmpeg
that ``compose()`` starts, so ``RUSAGE_CHILDREN``'s ``ru_maxrss`` is that ffmpeg's peak resident
set size.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

from video_assets.media.compose import ComposeSettings, Segment, compose


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    segments = [Segment(**s) for s in spec["segments"]]
    settings = ComposeSettings(**spec["settings"])
    started = time.perf_counter()
    compose(spec["clip_paths"], spec["clip_durations_s"], segments, spec["audio_path"],
            spec["out_path"], settings)
    wall_s = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"wall_s": wall_s, "ffmpeg_peak_rss_mb": peak_kb / 1024}))


if __name__ == "__main__":
    main(sys.argv[1])
