"""The code location loads and validates, with the asset graph PRODUCT.md describes."""

from __future__ import annotations

from dagster import AssetKey, Definitions

from video_assets.definitions import defs


def test_definitions_validate():
    Definitions.validate_loadable(defs)


def test_asset_graph_order_and_partitions():
    graph = defs.resolve_asset_graph()
    edges = [("job_request", "beat_grid"), ("beat_grid", "lyrics"), ("lyrics", "script"),
             ("script", "voiceover"), ("script", "storyboard"), ("storyboard", "clips"),
             ("clips", "final_video"), ("voiceover", "final_video"),
             ("final_video", "quality_report")]
    for upstream, downstream in edges:
        assert AssetKey(upstream) in graph.get(AssetKey(downstream)).parent_keys
    for name in {name for edge in edges for name in edge}:
        node = graph.get(AssetKey(name))
        assert node.partitions_def is not None and node.partitions_def.name == "jobs"


def test_paid_stages_share_the_providers_pool():
    graph = defs.resolve_asset_graph()
    pools = {name: defs.resolve_assets_def(name).get_op_def_for_asset_key(AssetKey(name)).pool
             for name in ("storyboard", "clips", "script")}
    assert pools == {"storyboard": "providers", "clips": "providers", "script": None}
    assert graph.get(AssetKey("clips")).partitions_def.name == "jobs"


def test_render_job_runs_in_process():
    job = defs.resolve_job_def("render_job")
    assert job.executor_def.name == "in_process"
    assert {s.name for s in defs.sensors} == {"inbox_sensor", "job_failure_sensor",
                                              "dead_run_sensor", "webhook_on_success",
                                              "webhook_on_failure", "webhook_on_cancel"}


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


def test_edit_job_takes_the_edits_as_script_config_and_runs_from_script_down():
    job = defs.resolve_job_def("edit_job")
    assert job.executor_def.name == "in_process"
    assert set(job.graph.node_names()) == {"script", "voiceover", "captions", "storyboard",
                                           "clips", "final_video"}
    # the UI's launchpad scaffolds this: a list of edits, each an op, a scene and its fields
    config = job.run_config_schema.config_type.fields["ops"].config_type.fields["script"] \
        .config_type.fields["config"].config_type.fields
    edits = config["edits"].config_type
    while not hasattr(edits, "fields"):  # an optional list of edits: unwrap to one edit
        edits = edits.inner_type
    assert {"op", "scene", "prompt", "beats", "in_s", "to", "at_beat", "file"} <= set(edits.fields)
    assert "replan" in config


def test_version_job_undoes_or_redoes_by_config():
    job = defs.resolve_job_def("version_job")
    fields = job.run_config_schema.config_type.fields["ops"].config_type \
        .fields["change_version"].config_type.fields["config"].config_type.fields
    assert {"job_id", "action"} <= set(fields)
