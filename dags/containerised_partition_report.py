"""Containerised step: summarise a day's raw-zone partition with work shipped in its own image.

The KubernetesPodOperator pattern for work that should not live in the Airflow image (other language, other
dependencies, heavy tools): the task starts a pod from a pinned image, waits for it deferred in the triggerer
(no worker slot held), streams its logs into the task log and deletes the pod once it succeeded.

Here the image is the AWS CLI, summarising ``s3://<raw bucket>/raw/hackernews/stories/dt=<day>/`` for the
data interval of the run. AWS access: IRSA of the service account in production; on kind the optional
Secret ``airbricks-pod-aws`` (created by ``make kind-up``) points the CLI at the in-cluster MinIO.
"""

from __future__ import annotations

import os

import pendulum
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG, CronDataIntervalTimetable
from kubernetes.client import models as k8s

# Read at parse time, like every airbricks DAG: plain environment lookups, no I/O.
RAW_BUCKET = os.environ.get("AIRBRICKS_RAW_BUCKET", "airbricks-raw")
POD_NAMESPACE = os.environ.get("AIRBRICKS_POD_NAMESPACE", "airbricks")
# The task pods' service account of the chart (IRSA role in production); see chart/values-prod.yaml.
POD_SERVICE_ACCOUNT = os.environ.get("AIRBRICKS_POD_SERVICE_ACCOUNT", "airbricks-airflow-worker-kubernetes")
# Pinned: a tag of the AWS CLI's own release, never `latest`.
AWS_CLI_IMAGE = "public.ecr.aws/aws-cli/aws-cli:2.17.0"
PARTITION = "s3://" + RAW_BUCKET + "/raw/hackernews/stories/dt={{ data_interval_start | ds }}/"

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
        arguments=["s3", "ls", "--recursive", "--summarize", "--human-readable", PARTITION],
        env_vars={"AWS_DEFAULT_REGION": "us-east-1", "AWS_PAGER": "", "HOME": "/home/report"},
        # Optional: present on kind (MinIO endpoint and keys), absent in production (IRSA).
        env_from=[
            k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name="airbricks-pod-aws", optional=True))
        ],
        service_account_name=POD_SERVICE_ACCOUNT,
        container_resources=k8s.V1ResourceRequirements(
            requests={"cpu": "100m", "memory": "128Mi"},
            limits={"cpu": "500m", "memory": "256Mi"},
        ),
        # Prefer the nodes meant for task workloads; tolerate their dedicated taint if they have one.
        affinity=k8s.V1Affinity(
            node_affinity=k8s.V1NodeAffinity(
                preferred_during_scheduling_ignored_during_execution=[
                    k8s.V1PreferredSchedulingTerm(
                        weight=100,
                        preference=k8s.V1NodeSelectorTerm(
                            match_expressions=[
                                k8s.V1NodeSelectorRequirement(
                                    key="airbricks.dev/workload", operator="In", values=["true"]
                                )
                            ]
                        ),
                    )
                ]
            )
        ),
        tolerations=[
            k8s.V1Toleration(
                key="airbricks.dev/workload", operator="Equal", value="true", effect="NoSchedule"
            )
        ],
        security_context=k8s.V1PodSecurityContext(
            run_as_non_root=True,
            run_as_user=1000,
            run_as_group=1000,
            seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
        ),
        container_security_context=k8s.V1SecurityContext(
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            capabilities=k8s.V1Capabilities(drop=["ALL"]),
        ),
        # Read-only root filesystem: the CLI's home (config/cache) is a small scratch volume.
        volumes=[k8s.V1Volume(name="home", empty_dir=k8s.V1EmptyDirVolumeSource(size_limit="16Mi"))],
        volume_mounts=[k8s.V1VolumeMount(name="home", mount_path="/home/report")],
        labels={"app.kubernetes.io/part-of": "airbricks", "app.kubernetes.io/component": "partition-report"},
        startup_timeout_seconds=300,
        active_deadline_seconds=1200,
        # Wait in the triggerer instead of holding a worker; keep failed pods for `kubectl describe`.
        deferrable=True,
        on_finish_action="delete_succeeded_pod",
        get_logs=True,
        do_xcom_push=False,
    )
