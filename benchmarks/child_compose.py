"""Run one ``compose()`` in this fresh process, as ``final_video`` runs it (with the encoder's
``FramesTap``); print its wall time and the peak memory of the ffmpeg processes it ran, as JSON.

``python -m benchmarks.child_compose SPEC.json``. Two peaks are reported:

- ``ffmpeg_peak_rss_mb``: the peak of the *sum* of the resident set sizes of every ffmpeg process
  alive at once (a long edit runs an encoder plus up to two decoding windows), polled every
  100 ms with psutil (they are this process's direct children; polling costs ~1 % of a core);
  this is the figure the target is about.
- ``ffmpeg_max_single_rss_mb``: ``RUSAGE_CHILDREN``'s ``ru_maxrss``, the largest single ffmpeg's
  own peak (exact, from the kernel; for a one-process edit both agree up to polling).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

from benchmarks.common import TreeRssPoller
from video_assets.media.compose import ComposeSettings, FramesTap, Segment, compose


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    segments = [Segment(**s) for s in spec["segments"]]
    settings = ComposeSettings(**spec["settings"])
    # as final_video runs it: with the encoder's copy of its frames for the measurement
    tap = FramesTap(Path(spec["out_path"]).with_suffix(".frames.rgb"))
    started = time.perf_counter()
    with TreeRssPoller() as poller:
        compose(spec["clip_paths"], spec["clip_durations_s"], segments, spec["audio_path"],
                spec["out_path"], settings, frames=tap)
    wall_s = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"wall_s": wall_s, "ffmpeg_peak_rss_mb": poller.peak_bytes / 2**20,
                      "ffmpeg_max_single_rss_mb": usage.ru_maxrss / 1024,
                      "ffmpeg_cpu_s": usage.ru_utime + usage.ru_stime}))


if __name__ == "__main__":
    main(sys.argv[1])
