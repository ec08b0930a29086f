"""The asset jobs a run can be: a job's first render, and an edit of it (named by asset keys, so
that the sensors can target them without importing the assets)."""

from dagster import AssetSelection, define_asset_job, in_process_executor

RUN_JOB_NAME = "render_job"
EDIT_JOB_NAME = "edit_job"
# final_video is one step that materializes final_video and quality_report (assets/final.py)
STAGE_KEYS = ("job_request", "beat_grid", "lyrics", "script", "voiceover", "captions", "storyboard",
              "clips", "final_video", "quality_report")

render_job = define_asset_job(
    RUN_JOB_NAME,
    selection=AssetSelection.assets(*STAGE_KEYS),
    executor_def=in_process_executor,
    description="Render one job (one partition) through every stage, in one process.",
)

# an edit: the script of the job's current version edited (the edits are the run config of
# `script`), then every stage after it; each reuses what the edit kept (assets/script.py)
edit_job = define_asset_job(
    EDIT_JOB_NAME,
    selection=AssetSelection.assets("script").downstream(),
    executor_def=in_process_executor,
    description="Edit one job (one partition): give the edits as the run config of `script` "
                "(ops: script: config: edits: [{op: prompt, scene: 2, prompt: ...}]).",
)
