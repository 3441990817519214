"""Containerised step: summarise a day's raw-zone partition with work shipped in its own image.

The KubernetesPodOperator pattern for work that should not live in the Airflow image (other language, other
dependencies, heavy tools): the task starts a pod from a pinned image, waits for it deferred in the triggerer
(no worker slot held), streams its logs into the task log and deletes the pod once it succeeded.

Here the image is the AWS CLI, summarising ``s3://<raw bucket>/raw/hackernews/stories/dt=<day>/`` for the
data interval of the run. AWS access: IRSA of the service account in production; on kind the optional
Secret ``airbricks-pod-aws`` (created by ``make kind-up``) points the CLI at the in-cluster MinIO.
"""

from __future__ import annotations

import datetime
import os

import pendulum
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG, CronDataIntervalTimetable

from airbricks.partitions import RawPartition, raw_bucket

# Read at parse time, like every airbricks DAG: plain environment lookups, no I/O.
RAW_BUCKET = raw_bucket()
POD_NAMESPACE = os.environ.get("AIRBRICKS_POD_NAMESPACE", "airbricks")
# The task pods' service account of the chart (IRSA role in production); see chart/values-prod.yaml.
POD_SERVICE_ACCOUNT = os.environ.get("AIRBRICKS_POD_SERVICE_ACCOUNT", "airbricks-airflow-worker-kubernetes")
# Pinned: a tag of the AWS CLI's own release, never `latest`.
AWS_CLI_IMAGE = "public.ecr.aws/aws-cli/aws-cli:2.17.0"


def raw_partition_uri(start: datetime.datetime, end: datetime.datetime) -> str:
    """``s3://`` URI of the hackernews/stories partition of a data interval (the one ingestion wrote)."""
    return RawPartition.for_interval("hackernews", "stories", start, end).uri(RAW_BUCKET)


# The pod around the task's container, as Kubernetes JSON (the YAML of `kubectl`, camelCase keys). A plain
# dict, not kubernetes.client models: each model object builds a client Configuration (with its logger
# set-up) when constructed, which every parse of this file would pay for; the provider converts this dict
# when the task runs, and merges the operator's own settings (image, command, arguments) into the container
# named "base".
POD_TEMPLATE = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "labels": {
            "app.kubernetes.io/part-of": "airbricks",
            "app.kubernetes.io/component": "partition-report",
        }
    },
    "spec": {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "runAsGroup": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        # Prefer the nodes meant for task workloads; tolerate their dedicated taint if they have one.
        "affinity": {
            "nodeAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "preference": {
                            "matchExpressions": [
                                {"key": "airbricks.dev/workload", "operator": "In", "values": ["true"]}
                            ]
                        },
                    }
                ]
            }
        },
        "tolerations": [
            {"key": "airbricks.dev/workload", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
        ],
        # Read-only root filesystem: the CLI's home (config/cache) is a small scratch volume.
        "volumes": [{"name": "home", "emptyDir": {"sizeLimit": "16Mi"}}],
        "containers": [
            {
                "name": "base",
                "env": [
                    {"name": "AWS_DEFAULT_REGION", "value": "us-east-1"},
                    {"name": "AWS_PAGER", "value": ""},
                    {"name": "HOME", "value": "/home/report"},
                ],
                # Optional: present on kind (MinIO endpoint and keys), absent in production (IRSA).
                "envFrom": [{"secretRef": {"name": "airbricks-pod-aws", "optional": True}}],
                "resources": {
                    "requests": {"cpu": "100m", "memory": "128Mi"},
                    "limits": {"cpu": "500m", "memory": "256Mi"},
                },
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": [{"name": "home", "mountPath": "/home/report"}],
            }
        ],
    },
}

with DAG(
    dag_id="containerised_partition_report",
    description="Summarise a day's raw Hacker News partition from a pod running its own image.",
    # Daily intervals on the same boundaries as ingest_hackernews, so both name the same dt= partition
    # (manual runs too). The partition is written at the start of the interval's successor by that DAG;
    # the retries below cover its run time.
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["kubernetes", "example"],
    default_args={
        "owner": "data-platform",
        "retries": 3,
        "retry_delay": pendulum.duration(minutes=5),
        "execution_timeout": pendulum.duration(minutes=30),
    },
    user_defined_macros={"raw_partition_uri": raw_partition_uri},
    doc_md=__doc__,
) as dag:
    KubernetesPodOperator(
        task_id="summarise_partition",
        name="partition-report",
        namespace=POD_NAMESPACE,
        image=AWS_CLI_IMAGE,
        image_pull_policy="IfNotPresent",
        cmds=["aws"],
        # Templated with the run's data interval (arguments is a template field).
        arguments=[
            *("s3", "ls", "--recursive", "--summarize", "--human-readable"),
            "{{ raw_partition_uri(data_interval_start, data_interval_end) }}",
        ],
        service_account_name=POD_SERVICE_ACCOUNT,
        pod_template_dict=POD_TEMPLATE,
        startup_timeout_seconds=300,
        active_deadline_seconds=1200,
        # Wait in the triggerer instead of holding a worker; keep failed pods for `kubectl describe`.
        deferrable=True,
        on_finish_action="delete_succeeded_pod",
        get_logs=True,
        do_xcom_push=False,
    )
