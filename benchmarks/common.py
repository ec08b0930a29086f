"""Shared pieces of the benchmark suite: timed child processes, bare encodes, targets, progress.

Every figure the suite reports is a ratio or a paired comparison taken in the same run, because
the machine is shared and absolute seconds drift with its load. Peak memory is the peak resident
set size of one child process, read from the kernel when that child is reaped (``os.wait4``), or
``RUSAGE_CHILDREN`` inside a fresh Python subprocess whose only child is the ffmpeg being measured,
or the peak of the summed resident set sizes of a process tree, polled (``TreeRssPoller``).
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def log(message: str) -> None:
    """Progress on stderr (stdout carries the table)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _unexeced_fork(proc) -> bool:
    """Whether ``proc`` is a fork that has not yet run its program (``subprocess`` forks, then
    execs ffmpeg): the same command line as its parent, and the parent's pages shared copy on
    write, so its resident set is the parent's counted a second time."""
    parent = proc.parent()
    return parent is not None and proc.cmdline() == parent.cmdline()


def high_water_bytes(pid: int) -> dict[str, int]:
    """The kernel's memory figures of a live process (``/proc/<pid>/status``), in bytes:
    ``VmHWM`` (its peak resident set so far: no poll can miss it), ``VmRSS``, and the resident
    set split into ``RssAnon`` (heap, stacks: what it allocated) and ``RssFile`` (pages of mapped
    files: its program, libraries, any mapped data). Empty if the process is gone."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                    out[key] = int(value.split()[0]) * 1024
    except OSError:
        return {}
    return out


@dataclass
class ProcessPeak:
    """One process's peak as ``TreeRssPoller`` saw it: its kernel high-water mark (``VmHWM``,
    at the last poll before it ended) and, at the poll where its resident set was largest, how
    much of it was anonymous and how much file pages."""

    pid: int
    command: str  # program name and arguments (the first 200 characters)
    hwm_bytes: int = 0
    rss_bytes: int = 0
    anon_bytes: int = 0  # RssAnon at the largest poll
    file_bytes: int = 0  # RssFile at the largest poll

    def as_mb(self) -> dict:
        return {"command": self.command, "hwm_mb": round(self.hwm_bytes / 2**20, 1),
                "rss_mb": round(self.rss_bytes / 2**20, 1),
                "anon_mb": round(self.anon_bytes / 2**20, 1),
                "file_mb": round(self.file_bytes / 2**20, 1)}


class TreeRssPoller:
    """Polls the summed resident set size of a process tree every ``interval_s`` and keeps the
    peak: the process ``pid`` itself (``include_root``) and its children (all descendants with
    ``recursive``). Default: this process's direct children. Polling costs ~1 % of a core.
    ``samples``: (time.time(), summed bytes, the root's own bytes, the root's high-water mark so
    far: ``VmHWM``, 0 without ``include_root``) of every poll. A fork caught
    before it runs its program (``_unexeced_fork``) is not counted: its pages are its parent's.
    ``peaks``: per process, its kernel high-water mark and the anonymous/file split of its
    largest resident set (``ProcessPeak``): a peak between two polls still shows in ``VmHWM``."""

    def __init__(self, pid: int | None = None, include_root: bool = False,
                 recursive: bool = False, interval_s: float = 0.1) -> None:
        self.pid, self.include_root, self.recursive = pid, include_root, recursive
        self.interval_s = interval_s
        self.peak_bytes = 0
        self.samples: list[tuple[float, int, int, int]] = []
        self.peaks: dict[int, ProcessPeak] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.Error:  # already gone
            return
        while not self._stop.is_set():
            total = own = own_hwm = 0
            with contextlib.suppress(psutil.Error):  # the root may have just exited
                procs = root.children(recursive=self.recursive)
                own = root.memory_info().rss
                total += own if self.include_root else 0
                if self.include_root:
                    own_hwm = self._note(root)
                for proc in procs:
                    with contextlib.suppress(psutil.Error):  # it may have just exited
                        if _unexeced_fork(proc):
                            continue
                        total += proc.memory_info().rss
                        self._note(proc)
            self.peak_bytes = max(self.peak_bytes, total)
            self.samples.append((time.time(), total, own, own_hwm))
            self._stop.wait(self.interval_s)

    def _note(self, proc) -> int:
        """Update ``proc``'s ``ProcessPeak`` from ``/proc/<pid>/status``; its ``VmHWM``."""
        figures = high_water_bytes(proc.pid)
        if not figures:
            return 0
        peak = self.peaks.get(proc.pid)
        if peak is None:
            cmd = proc.cmdline()
            peak = self.peaks[proc.pid] = ProcessPeak(proc.pid, " ".join(
                " ".join([Path(cmd[0]).name if cmd else proc.name(), *cmd[1:]]).split())[:200])
        peak.hwm_bytes = max(peak.hwm_bytes, figures.get("VmHWM", 0))
        if figures.get("VmRSS", 0) > peak.rss_bytes:
            peak.rss_bytes = figures["VmRSS"]
            peak.anon_bytes, peak.file_bytes = figures.get("RssAnon", 0), figures.get("RssFile", 0)
        return peak.hwm_bytes

    def __enter__(self) -> TreeRssPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@dataclass(frozen=True)
class ChildRun:
    wall_s: float
    # the kernel's ru_maxrss from wait4: the largest peak resident set of the child and of every
    # process it reaped (a process started by vfork, as subprocess does, reports its parent's
    # high-water mark at exec as its own: never more than the parent's own peak)
    peak_rss_mb: float
    cpu_s: float  # user + system CPU time of the child and the children it reaped
    returncode: int
    stdout: str
    stderr: str
    tree_peak_rss_mb: float | None = None  # with poll_tree: the peak of the tree's summed RSS
    tree_samples: list[tuple[float, int, int, int]] | None = None  # with poll_tree: TreeRssPoller's
    tree_peaks: dict[int, ProcessPeak] | None = None  # with poll_tree: TreeRssPoller.peaks
    pid: int | None = None


def run_child(cmd: Sequence[str], env: dict[str, str] | None = None,
              cwd: str | Path | None = None, check: bool = True,
              poll_tree: bool = False) -> ChildRun:
    """Run ``cmd``; wall time from start to reaping, and its peak RSS from ``wait4``'s rusage;
    with ``poll_tree``, also the peak of the RSS summed over it and all its descendants."""
    started = time.perf_counter()
    proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            cwd=cwd, stdin=subprocess.DEVNULL)
    with (TreeRssPoller(proc.pid, include_root=True, recursive=True) if poll_tree
          else contextlib.nullcontext()) as poller:
        out, err = _drain(proc)
    _, status, usage = os.wait4(proc.pid, 0)
    wall_s = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    run = ChildRun(wall_s, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime,
                   proc.returncode, out, err,
                   poller.peak_bytes / 2**20 if poller is not None else None,
                   poller.samples if poller is not None else None,
                   poller.peaks if poller is not None else None, proc.pid)
    if check and run.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd[:3]))} ... exited {run.returncode}:\n"
                           f"{err[-2000:]}")
    return run


def _drain(proc: subprocess.Popen) -> tuple[str, str]:
    """Read both pipes to the end without reaping the process (wait4 does that)."""
    import threading

    chunks: dict[str, bytes] = {}

    def read(name: str, stream) -> None:
        chunks[name] = stream.read()

    threads = [threading.Thread(target=read, args=(n, s)) for n, s in
               (("out", proc.stdout), ("err", proc.stderr))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return (chunks["out"].decode("utf-8", "replace"), chunks["err"].decode("utf-8", "replace"))


def ffmpeg_exe() -> str:
    from video_assets.media.ffmpeg_bin import ffmpeg_exe as exe

    return exe()


def ffmpeg_version() -> str:
    out = subprocess.run([ffmpeg_exe(), "-version"], capture_output=True, text=True).stdout
    return out.splitlines()[0] if out else "unknown"


def bare_encode(video: Path, out: Path, preset: str = "veryfast", crf: int = 20) -> ChildRun:
    """The physical floor: re-encode ``video``'s frames with the same x264 settings and nothing
    else (decode, libx264, mp4). Same frame count and size as the file it reads."""
    return run_child([
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(video),
        "-map", "0:v:0", "-an", "-c:v", "libx264", "-preset", preset, "-crf", str(crf),
        "-pix_fmt", "yuv420p", str(out),
    ])


def count_frames(video: Path) -> int:
    from video_assets.media.probe import probe_video

    return probe_video(video).n_frames


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


@dataclass
class Target:
    """One target of the issue: what was asked, what was measured, and whether it holds."""

    name: str
    target: str  # e.g. "<= 1.25"
    measured: float | None
    met: bool
    why: str = ""  # filled when missed (or when the measurement could not be taken)

    @staticmethod
    def at_most(name: str, limit: float, measured: float | None, why_missed: str = "",
                unit: str = "") -> Target:
        met = measured is not None and measured <= limit
        return Target(name, f"<= {limit:g}{unit}", None if measured is None else round(measured, 3),
                      met, "" if met else why_missed)

    @staticmethod
    def at_least(name: str, limit: float, measured: float | None, why_missed: str = "",
                 unit: str = "") -> Target:
        met = measured is not None and measured >= limit
        return Target(name, f">= {limit:g}{unit}", None if measured is None else round(measured, 3),
                      met, "" if met else why_missed)


@dataclass
class Result:
    """One row group of the table: its figures, its targets and how they were measured."""

    name: str
    figures: dict = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    method: str = ""
    error: str = ""

    def to_json(self) -> dict:
        out = asdict(self)
        out["targets"] = [asdict(t) for t in self.targets]
        return out


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine_info() -> dict:
    import platform

    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "ffmpeg": ffmpeg_version(),
    }


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
