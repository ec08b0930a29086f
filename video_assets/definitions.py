"""The one Definitions object: assets, checks, the render job, sensors and resources."""

from __future__ import annotations

from dagster import (
    AssetSelection,
    Definitions,
    colored_console_logger,
    define_asset_job,
    in_process_executor,
)

from video_assets.assets.beats import beat_grid
from video_assets.assets.clips import clips
from video_assets.assets.final import final_video
from video_assets.assets.history import version_job
from video_assets.assets.lyrics import lyrics
from video_assets.assets.request import job_request
from video_assets.assets.script import script
from video_assets.assets.storyboard import storyboard
from video_assets.assets.voiceover import voiceover
from video_assets.cli_log import LOGGER_NAME, videogen_console
from video_assets.monitor import dead_run_sensor
from video_assets.resources import PipelineSettings, StoreResource, WarehouseResource
from video_assets.sensors import EDIT_JOB_NAME, RUN_JOB_NAME, inbox_sensor, job_failure_sensor

# final_video is one step that materializes final_video and quality_report (assets/final.py)
STAGES = [job_request, beat_grid, lyrics, script, voiceover, storyboard, clips, final_video]

render_job = define_asset_job(
    RUN_JOB_NAME,
    selection=AssetSelection.assets(*STAGES),
    executor_def=in_process_executor,
    description="Render one job (one partition) through every stage, in one process.",
)

# an edit: the script of the job's current version edited (the edits are the run config of
# `script`), then every stage after it; each reuses what the edit kept (assets/script.py)
edit_job = define_asset_job(
    EDIT_JOB_NAME,
    selection=AssetSelection.assets(script).downstream(),
    executor_def=in_process_executor,
    description="Edit one job (one partition): give the edits as the run config of `script` "
                "(ops: script: config: edits: [{op: prompt, scene: 2, prompt: ...}]).",
)

defs = Definitions(
    loggers={"console": colored_console_logger, LOGGER_NAME: videogen_console},
    assets=STAGES,
    jobs=[render_job, edit_job, version_job],
    sensors=[inbox_sensor, job_failure_sensor, dead_run_sensor],
    resources={
        "store": StoreResource(),
        "warehouse": WarehouseResource(),
        "settings": PipelineSettings(),
    },
)
