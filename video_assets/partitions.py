"""One dynamic partition per job: the job id is the partition key."""

from dagster import DynamicPartitionsDefinition

JOBS_PARTITION_NAME = "jobs"
jobs_partitions = DynamicPartitionsDefinition(name=JOBS_PARTITION_NAME)

# the stages that call paid providers (images, clips, lip-sync) share one Dagster concurrency
# pool: `dagster instance concurrency set providers 2` caps how many run them at once across
# runs (unlimited until set); inside a run, PipelineSettings.provider_concurrency bounds the calls
PROVIDERS_POOL = "providers"
