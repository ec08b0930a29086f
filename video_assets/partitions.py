"""One dynamic partition per job: the job id is the partition key."""

from dagster import DynamicPartitionsDefinition

JOBS_PARTITION_NAME = "jobs"
jobs_partitions = DynamicPartitionsDefinition(name=JOBS_PARTITION_NAME)
