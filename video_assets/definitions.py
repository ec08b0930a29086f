"""The one Definitions object: assets, checks, the render, edit and version jobs, sensors and
resources."""

from __future__ import annotations

from dagster import Definitions, colored_console_logger

from video_assets.assets.beats import beat_grid
from video_assets.assets.caption_track import captions
from video_assets.assets.clips import clips
from video_assets.assets.final import final_video
from video_assets.assets.history import version_job
from video_assets.assets.lyrics import lyrics
from video_assets.assets.request import job_request
from video_assets.assets.script import script
from video_assets.assets.storyboard import storyboard
from video_assets.assets.voiceover import voiceover
from video_assets.cli_log import LOGGER_NAME, videogen_console
from video_assets.jobs import RUN_JOB_NAME as RUN_JOB_NAME  # re-exported: the render job's name
from video_assets.jobs import edit_job, render_job
from video_assets.monitor import dead_run_sensor
from video_assets.resources import PipelineSettings, StoreResource, WarehouseResource
from video_assets.sensors import inbox_sensor, job_failure_sensor
from video_assets.webhook_sensor import webhook_sensors

STAGES = [job_request, beat_grid, lyrics, script, voiceover, captions, storyboard, clips,
          final_video]

defs = Definitions(
    loggers={"console": colored_console_logger, LOGGER_NAME: videogen_console},
    assets=STAGES,
    jobs=[render_job, edit_job, version_job],
    sensors=[inbox_sensor, job_failure_sensor, dead_run_sensor, *webhook_sensors],
    resources={
        "store": StoreResource(),
        "warehouse": WarehouseResource(),
        "settings": PipelineSettings(),
    },
)
