"""``clips``: one generated clip per scene, at a length the provider allows.

The clip covers the scene's segment on the timeline (including transition overlaps); the provider
is asked for its allowed length closest to that, and composition trims or loops, never stretches.
Paid calls reserve their price against the budget first; a real clip that still fails after its
retries is replaced by the offline animatic for that scene (flagged), and a job left with fewer
than 2 real clips fails. An interrupt (Ctrl-C, SIGTERM, ``videogen cancel``) stops every call in
flight (``retry.cancel_calls``): their predictions are cancelled, their rows say ``cancelled``,
and the workers are free within seconds, so the stage ends at once.
"""

from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset
from PIL import Image, ImageOps

from video_assets.assets.budget import cap_usd, clip_beats_s, segments_for
from video_assets.assets.common import (
    clip_cache_key,
    clip_key,
    ledger,
    lipsync_cache_key,
    load_plan,
    row_factory,
    storyboard_key,
)
from video_assets.media.ffmpeg_bin import run_ffmpeg
from video_assets.partitions import PROVIDERS_POOL, jobs_partitions
from video_assets.providers.base import choose_duration, ledger_call
from video_assets.providers.budget import Spend
from video_assets.providers.offline import OfflineVideo
from video_assets.providers.retry import ProviderError, cancel_calls
from video_assets.providers.select import lipsync as lipsync_provider
from video_assets.providers.select import video_provider
from video_assets.resources import PipelineSettings, StoreResource, WarehouseResource
from video_assets.schemas import ClipSpec
from video_assets.store import job_key, sha256_file

CLIPS_MANIFEST = "clips.json"
MIN_REAL_CLIPS = 2


def make_clip(provider, media, image, image_sha, scene, clip_s, beats, size, calls,
              base: dict) -> tuple:
    """The clip from the cache, or generated and cached; returns (cache key, cache hit)."""
    key = clip_cache_key(provider, image_sha, clip_s, scene, beats, size)
    new_row = row_factory(calls, **base, provider=provider.name, model=provider.model,
                          units=clip_s, unit=getattr(provider, "unit", "video_s"))
    if media.cached(key):
        new_row().cache_hit = True
        return key, True
    with media.scratch_dir() as tmp:
        out = tmp / f"clip-{scene.index:02d}.mp4"
        if getattr(provider, "paid", False):
            provider.generate(image, scene, clip_s, beats, size, out, new_row)
        else:
            with ledger_call(new_row()):
                provider.generate(image, scene, clip_s, beats, size, out)
        media.put_file(key, out)
    return key, False


def last_frame(clip: Path, size: tuple[int, int], out_path: Path) -> None:
    """The clip's last frame at ``size``: the next scene's start image (continuation)."""
    frame = out_path.with_suffix(".raw.png")
    run_ffmpeg(["-y", "-sseof", "-0.5", "-i", str(clip), "-an", "-update", "1", str(frame)],
               what=f"taking the last frame of {clip.name}")
    with Image.open(frame) as im:
        ImageOps.fit(im.convert("RGB"), size, Image.Resampling.LANCZOS).save(out_path)
    frame.unlink()


def sync_lips(lipsync, media, clip_cache: str, audio: Path, audio_sha: str, offset_s: float,
              clip_s: float, size: tuple[int, int], calls, base: dict) -> tuple[str, bool]:
    """The clip with its mouths synced to the song from ``offset_s`` (cached like a clip)."""
    key = lipsync_cache_key(lipsync, clip_cache, audio_sha, offset_s, clip_s)
    new_row = row_factory(calls, **{**base, "asset": "clips"}, provider=lipsync.name,
                          model=lipsync.model, units=clip_s, unit=lipsync.unit)
    if media.cached(key):
        new_row().cache_hit = True
        return key, True
    with media.scratch_dir() as tmp, media.local_path(clip_cache) as clip:
        part = tmp / "audio.wav"
        # exactly clip_s long (silence after the song's end): lip-sync models cut the video
        # to the audio's length
        run_ffmpeg(["-y", "-ss", f"{offset_s:.6f}", "-i", str(audio), "-vn", "-af", "apad",
                    "-t", f"{clip_s:.6f}", "-ac", "2", "-ar", "44100", "-c:a", "pcm_s16le",
                    str(part)],
                   what=f"cutting the song at {offset_s:.2f} s for lip-sync")
        out = tmp / "synced.mp4"
        lipsync.sync(clip, part, clip_s, size, out, new_row)
        media.put_file(key, out)
    return key, False


@asset(partitions_def=jobs_partitions, group_name="video", deps=["storyboard"], kinds={"python"},
       pool=PROVIDERS_POOL)
def clips(
    context: AssetExecutionContext,
    store: StoreResource,
    warehouse: WarehouseResource,
    settings: PipelineSettings,
) -> MaterializeResult:
    """Generate every scene's clip in parallel (bounded), reusing cached generations; with
    ``continuation``, one after another, each starting from the previous clip's last frame."""
    job_id = context.partition_key
    media, wh = store.get(), warehouse.get()
    stored, grid, plan = load_plan(media, job_id)
    request = stored.request
    policy, conc = settings.retry_policy(), settings.provider_concurrency
    provider = video_provider(request.providers.video, policy, conc)
    lipsync = lipsync_provider(request.providers, policy, conc)
    paid = getattr(provider, "paid", False)
    size = provider.output_size(request.size)
    segments = segments_for(plan, settings.fps, settings.transition_half_frames)
    spend = Spend(job_id, cap_usd(stored, settings), wh.job_cost_usd(job_id))

    with ledger(wh) as calls, ExitStack() as keep:  # every call is recorded, also on failure
        audio = keep.enter_context(media.local_path(stored.audio_key)) if lipsync else None
        scratch = keep.enter_context(media.scratch_dir())

        def paid_call(label: str, price: float, work, scene_index: int):
            """``work`` with its price reserved; a failure gives back what it did not charge."""
            return spend.pay(label, price, work, lambda: sum(
                r.cost_usd for r in list(calls) if r.scene_index == scene_index))

        def one(scene_index: int, start_image: Path | None = None) -> tuple[ClipSpec, bool]:
            scene, seg = plan.scenes[scene_index], segments[scene_index]
            need_s = seg.n_frames / settings.fps
            clip_s = choose_duration(need_s, provider.allowed_durations_s)
            beats = clip_beats_s(grid.beats_s, seg, settings.fps, clip_s)
            base = {"job_id": job_id, "asset": "clips", "scene_index": scene.index}
            used, fallback, synced = provider, False, False
            with ExitStack() as stack:
                image = start_image or stack.enter_context(
                    media.local_path(storyboard_key(job_id, scene.index)))
                image_sha = sha256_file(image)
                key = clip_cache_key(provider, image_sha, clip_s, scene, beats, size)
                try:
                    price = 0.0 if not paid or media.cached(key) else provider.estimate_usd([clip_s])
                    key, hit = paid_call(
                        f"clip {scene.index + 1}: {clip_s:g} s ({provider.model})", price,
                        lambda: make_clip(provider, media, image, image_sha, scene, clip_s, beats,
                                          size, calls, base), scene.index)
                except ProviderError as exc:  # retries exhausted: the animatic stands in
                    context.log.warning(f"clip {scene.index + 1}: {exc}; using the offline "
                                        "animatic for this scene")
                    used, fallback = OfflineVideo(), True
                    clip_s = choose_duration(need_s, used.allowed_durations_s)
                    beats = clip_beats_s(grid.beats_s, seg, settings.fps, clip_s)
                    key, hit = make_clip(used, media, image, image_sha, scene, clip_s, beats,
                                         used.output_size(request.size), calls, base)
            if lipsync and scene.lipsync and not fallback:
                offset_s = seg.start_frame / settings.fps
                synced_key = lipsync_cache_key(lipsync, key, stored.audio_sha256, offset_s, clip_s)
                price = 0.0 if media.cached(synced_key) else lipsync.estimate_usd([clip_s])
                try:
                    key, lip_hit = paid_call(
                        f"lip-sync {scene.index + 1}: {clip_s:g} s ({lipsync.model})", price,
                        lambda: sync_lips(lipsync, media, key, audio, stored.audio_sha256,
                                          offset_s, clip_s, size, calls, base), scene.index)
                    synced, hit = True, hit and lip_hit
                except ProviderError as exc:  # the clip stays, without lip-sync
                    context.log.warning(f"clip {scene.index + 1}: lip-sync failed ({exc}); "
                                        "keeping the clip as generated")
            media.copy(key, clip_key(job_id, scene.index))
            spec = ClipSpec(index=scene.index, key=clip_key(job_id, scene.index),
                            clip_duration_s=clip_s, segment_start_s=seg.start_frame / settings.fps,
                            segment_duration_s=need_s, fallback=fallback, lipsync=synced,
                            provider="offline" if used.name == "offline"
                            else f"{used.name}:{used.model}")
            return spec, hit

        def report(done: int, spec: ClipSpec, hit: bool) -> None:
            context.log.info(f"clip {done}/{len(plan.scenes)}: {spec.clip_duration_s:g} s for a "
                             f"{spec.segment_duration_s:.2f} s segment{' (cached)' if hit else ''}"
                             f"{' (lip-synced)' if spec.lipsync else ''}"
                             f"{' (offline fallback)' if spec.fallback else ''}")

        specs: list[ClipSpec] = []
        hits = 0
        if request.continuation:
            start_image = None
            for i in range(len(plan.scenes)):
                spec, hit = one(i, start_image)
                specs.append(spec)
                hits += hit
                report(i + 1, spec, hit)
                start_image = scratch / f"start-{i + 2:02d}.png"
                with media.local_path(spec.key) as clip:
                    last_frame(clip, request.size, start_image)
        else:
            with ThreadPoolExecutor(max_workers=max(1, settings.clip_workers)) as pool:
                futures = [pool.submit(one, i) for i in range(len(plan.scenes))]
                for done, fut in enumerate(futures, start=1):
                    try:
                        spec, hit = fut.result()
                    except BaseException as exc:
                        if not isinstance(exc, Exception):  # an interrupt (Ctrl-C, SIGTERM):
                            cancel_calls()  # the workers' calls stop and cancel their predictions
                        for other in futures:
                            other.cancel()
                        raise
                    specs.append(spec)
                    hits += hit
                    report(done, spec, hit)
    real = [s for s in specs if not s.fallback]
    if paid and len(real) < min(MIN_REAL_CLIPS, len(specs)):
        raise ProviderError(f"only {len(real)} of {len(specs)} clips came from {provider.model} "
                            f"(the rest fell back to animatics); a job needs at least "
                            f"{MIN_REAL_CLIPS}; fix: retry later or choose another video model")
    media.put_json(job_key(job_id, CLIPS_MANIFEST), [s.model_dump() for s in specs])
    looped = sum(s.clip_duration_s < s.segment_duration_s for s in specs)
    fallbacks = [s.index + 1 for s in specs if s.fallback]
    return MaterializeResult(metadata={
        "n_clips": len(specs),
        "cache_hits": hits,
        "generated": len(specs) - hits,
        "looped": looped,
        "trimmed": len(specs) - looped,
        "provider": f"{provider.name}/{provider.model}",
        "continuation": request.continuation,
        "lipsynced_scenes": ", ".join(str(s.index + 1) for s in specs if s.lipsync) or "none",
        "fallback_scenes": ", ".join(map(str, fallbacks)) or "none",
        "spent_usd": round(wh.job_cost_usd(job_id), 6),
        "clip_size": f"{size[0]}x{size[1]}",
        "clips": MetadataValue.md("\n".join(
            f"- {s.index + 1:02d}: {s.clip_duration_s:g} s clip -> {s.segment_duration_s:.3f} s "
            f"from {s.segment_start_s:.3f} s ({s.provider}{', fallback' if s.fallback else ''})"
            for s in specs)),
    })
