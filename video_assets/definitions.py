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
from video_assets.assets.lyrics import lyrics
from video_assets.assets.request import job_request
from video_assets.assets.script import script
from video_assets.assets.storyboard import storyboard
from video_assets.assets.voiceover import voiceover
from video_assets.cli_log import LOGGER_NAME, videogen_console
from video_assets.monitor import dead_run_sensor
from video_assets.resources import PipelineSettings, StoreResource, WarehouseResource
from video_assets.sensors import RUN_JOB_NAME, inbox_sensor, job_failure_sensor

# final_video is one step that materializes final_video and quality_report (assets/final.py)
STAGES = [job_request, beat_grid, lyrics, script, voiceover, storyboard, clips, final_video]

render_job = define_asset_job(
    RUN_JOB_NAME,
    selection=AssetSelection.assets(*STAGES),
    executor_def=in_process_executor,
    description="Render one job (one partition) through every stage, in one process.",
)

defs = Definitions(
    loggers={"console": colored_console_logger, LOGGER_NAME: videogen_console},
    assets=STAGES,
    jobs=[render_job],
    sensors=[inbox_sensor, job_failure_sensor, dead_run_sensor],
    resources={
        "store": StoreResource(),
        "warehouse": WarehouseResource(),
        "settings": PipelineSettings(),
    },
)
