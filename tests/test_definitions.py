"""The code location loads and validates, with the asset graph PRODUCT.md describes."""

from __future__ import annotations

from dagster import AssetKey, Definitions

from video_assets.definitions import defs


def test_definitions_validate():
    Definitions.validate_loadable(defs)


def test_asset_graph_order_and_partitions():
    graph = defs.resolve_asset_graph()
    order = ["job_request", "beat_grid", "script", "storyboard", "clips", "final_video",
             "quality_report"]
    for upstream, downstream in zip(order, order[1:], strict=False):
        assert AssetKey(upstream) in graph.get(AssetKey(downstream)).parent_keys
    for name in order:
        node = graph.get(AssetKey(name))
        assert node.partitions_def is not None and node.partitions_def.name == "jobs"


def test_render_job_runs_in_process():
    job = defs.resolve_job_def("render_job")
    assert job.executor_def.name == "in_process"
    assert {s.name for s in defs.sensors} == {"inbox_sensor", "job_failure_sensor"}


def test_final_video_checks_block_when_the_video_is_wrong():
    from dagster import AssetKey

    from video_assets.assets.quality import BARS

    checks = {key.name: key for key in defs.resolve_asset_graph().asset_check_keys
              if key.asset_key == AssetKey("final_video")}
    assert set(checks) == {b.name for b in BARS}
    specs = {s.name: s for s in defs.resolve_assets_def("final_video").check_specs}
    assert {n for n, s in specs.items() if s.blocking} == {
        "duration_matches_audio", "format", "audio_in_sync", "cuts_on_beats", "no_black_or_frozen"}
    assert all(s.partitions_def is not None for s in specs.values())
