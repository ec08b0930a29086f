"""What ``videogen`` prints while a run goes on: one line per message a stage logs (its progress,
its warnings), nothing of Dagster's own events. A failure is then said once, in one line, by the
command (the stage, the problem, the fix); its traceback stays in the Dagster event log (the UI
shows it), or on the console with ``--verbose`` (Dagster's own console logger)."""

from __future__ import annotations

import logging
import sys
import time

from dagster import InitLoggerContext, logger

LOGGER_NAME = "videogen"
# Dagster's notices that later stages were skipped after a failure (the failure says enough)
SKIP_NOTICES = ("Dependencies for step",)


class StageLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        meta = record.__dict__.get("dagster_meta") or {}
        stage = meta.get("step_key") or "run"
        message = meta.get("orig_message", record.getMessage())
        return f"{time.strftime('%H:%M:%S')} {stage}: {message}"


class StageMessagesOnly(logging.Filter):
    """Keep the messages the stages log themselves; drop Dagster's events (step started, step
    failed with its traceback, run failed...), which the command sums up itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        meta = record.__dict__.get("dagster_meta") or {}
        message = meta.get("orig_message", "")
        return meta.get("dagster_event") is None and not message.startswith(SKIP_NOTICES)


@logger(config_schema={"log_level": str}, description="videogen's console: stage messages only")
def videogen_console(init_context: InitLoggerContext) -> logging.Logger:
    log = logging.Logger(LOGGER_NAME, level=init_context.logger_config.get("log_level", "INFO"))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(StageLineFormatter())
    handler.addFilter(StageMessagesOnly())
    log.addHandler(handler)
    return log
