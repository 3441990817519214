"""``HttpToS3RawOperator``: one data interval of one API dataset into the S3 raw zone.

Module import is cheap (DAG files import it): requests, boto3 and the Amazon provider load in ``execute``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator

from airbricks.ingestion.assets import raw_asset
from airbricks.ingestion.config import DatasetConfig, HttpPolicy
from airbricks.ingestion.manifest_watcher import ANNOUNCED_BY_FIELD
from airbricks.partitions import raw_bucket

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airbricks.ingestion.http import ApiEndpoint


class HttpToS3RawOperator(BaseOperator):
    """Fetch every page of a paginated JSON API for the run's data interval and publish them, byte-exact,
    to ``s3://<bucket>/raw/<source>/<dataset>/dt=YYYY-MM-DD/`` with a ``_manifest.json`` written last.

    Emits an asset event on ``s3://<bucket>/raw/<source>/<dataset>`` whose extra describes the partition.
    Returns (XCom) the same summary: partition, manifest_key, pages, records, bytes, interval_start/end.

    :param source: source name (S3 key segment, default connection ``http_<source>``).
    :param dataset: dataset name (S3 key segment).
    :param path: URL path appended to the connection's base URL. Templated.
    :param query_params: query params of the first request; pagination params are added. Templated, so
        ``{{ data_interval_start.int_timestamp }}`` and friends render.
    :param headers: extra request headers (not secrets: those belong in the connection). Templated.
    :param records_path: dotted JSON path of the record list in a page (``$`` = the page is the list).
    :param required_fields: fields every record must carry (non-null); a page violating it fails the task.
    :param pagination: pagination settings, a mapping with ``style`` (see docs/INGESTION.md).
    :param auth_type: ``none``, ``bearer``, ``basic``, ``api_key_header`` or ``api_key_query``.
    :param http_conn_id: Airflow connection with base URL and secret; default ``http_<source>``.
    :param aws_conn_id: Airflow AWS connection for S3 (``aws_default``).
    :param bucket: raw-zone bucket; default ``$AIRBRICKS_RAW_BUCKET`` or ``airbricks-raw``.
    :param http_policy: timeouts / retries / limits (mapping or :class:`HttpPolicy`); defaults are sane.
    """

    template_fields: Sequence[str] = ("path", "query_params", "headers")
    template_fields_renderers: ClassVar[dict[str, str]] = {"query_params": "json", "headers": "json"}
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        source: str,
        dataset: str,
        path: str,
        query_params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        records_path: str = "$",
        required_fields: Sequence[str] = (),
        pagination: Mapping[str, Any] | None = None,
        auth_type: str = "none",
        http_conn_id: str | None = None,
        aws_conn_id: str = "aws_default",
        bucket: str | None = None,
        http_policy: HttpPolicy | Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.source = source
        self.dataset = dataset
        self.bucket = bucket or raw_bucket()
        self.asset = raw_asset(self.bucket, source, dataset)
        kwargs.setdefault("outlets", [self.asset])
        super().__init__(**kwargs)
        self.path = path
        self.query_params = dict(query_params or {})
        self.headers = dict(headers or {})
        self.records_path = records_path
        self.required_fields = tuple(required_fields)
        self.pagination = dict(pagination or {"style": "none"})
        self.auth_type = auth_type
        self.http_conn_id = http_conn_id or f"http_{source}"
        self.aws_conn_id = aws_conn_id
        self.http_policy = (
            http_policy
            if isinstance(http_policy, HttpPolicy)
            else HttpPolicy.model_validate(http_policy or {})
        )
        # Fail at parse time, naming the task, rather than at 3 am in the first run.
        self._dataset_config()

    def _dataset_config(self) -> DatasetConfig:
        try:
            return DatasetConfig.model_validate(
                {
                    "path": self.path,
                    "query_params": self.query_params,
                    "headers": self.headers,
                    "records_path": self.records_path,
                    "required_fields": self.required_fields,
                    "pagination": self.pagination,
                }
            )
        except ValueError as exc:
            raise ValueError(f"task '{self.task_id}' ({self.source}/{self.dataset}): {exc}") from exc

    def _endpoint(self) -> ApiEndpoint:
        """The API endpoint from connection ``http_conn_id``; a missing or unusable one fails the task now.

        Retrying cannot create a connection or fill in its host, so these errors raise
        ``AirflowFailException`` (no retries) instead of spending every retry (minutes at the defaults).
        """
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException

        from airbricks.ingestion.http import endpoint_from_connection

        try:
            conn = BaseHook.get_connection(self.http_conn_id)
        except AirflowNotFoundException as exc:
            raise AirflowFailException(
                f"{self.source}: Airflow connection '{self.http_conn_id}' does not exist (failing without "
                f"retries: retrying cannot create it). Create it in your secrets backend, or e.g. "
                f"`airflow connections add {self.http_conn_id} --conn-type http --conn-host <api host> "
                f"--conn-schema https` (the token, if any, in --conn-password), or set "
                f'AIRFLOW_CONN_{self.http_conn_id.upper()}=\'{{"conn_type": "http", "host": '
                f'"<api host>"}}\'. Fields per auth type: docs/INGESTION.md, Connections.'
            ) from exc
        try:
            return endpoint_from_connection(self.source, self.auth_type, conn)
        except ValueError as exc:
            raise AirflowFailException(
                f"{exc} (failing without retries; see docs/INGESTION.md, Connections)"
            ) from exc

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        from airbricks.ingestion.ingest import ingest_interval

        start, end = context.get("data_interval_start"), context.get("data_interval_end")
        if start is None or end is None:
            raise ValueError(
                f"{self.source}/{self.dataset}: the run has no data interval; schedule the DAG with "
                "CronDataIntervalTimetable (the DAG factory does)"
            )
        config = self._dataset_config()
        endpoint = self._endpoint()
        s3 = S3Hook(aws_conn_id=self.aws_conn_id).get_conn()
        result = ingest_interval(
            source=self.source,
            dataset=self.dataset,
            config=config,
            endpoint=endpoint,
            http_policy=self.http_policy,
            s3=s3,
            bucket=self.bucket,
            interval_start=start,
            interval_end=end,
            run_id=context["run_id"],
            # This task emits the keyed asset event itself; raw_manifest_watcher leaves its manifest alone.
            manifest_extra={ANNOUNCED_BY_FIELD: f"{self.dag_id}.{self.task_id}"},
        )
        summary = result.as_dict()
        event = context["outlet_events"][self.asset]
        event.extra = summary
        # A partitioned asset event (Airflow 3.2+): the key lets PartitionedAssetTimetable consumers run once
        # per partition and shows it in the UI/REST API (docs/PARTITIONS.md).
        event.add_partitions(result.partition.key)
        self._summary = summary
        return summary

    # ---- OpenLineage (the provider's listener calls this after execute; docs/LINEAGE.md) --------------
    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Lineage of the run: the API endpoint (no query string) in, the published raw partition out, with
        its records, bytes and pages."""
        from airflow.providers.openlineage.extractors import OperatorLineage
        from airflow.sdk import BaseHook
        from openlineage.client.facet_v2 import output_statistics_output_dataset

        from airbricks.ingestion.http import base_url_from_connection
        from airbricks.lineage import ol_dataset
        from airbricks.partitions import RawPartition

        summary = getattr(self, "_summary", None)
        if summary:
            partition = RawPartition.from_uri(str(summary["partition"]), bucket=self.bucket)
        else:  # not executed in this process (the listener runs right after execute, so not expected)
            context = task_instance.get_template_context()
            partition = RawPartition.for_interval(
                self.source, self.dataset, context["data_interval_start"], context["data_interval_end"]
            )
        api = base_url_from_connection(BaseHook.get_connection(self.http_conn_id)) + self.path
        facets = {}
        if summary:
            facets["outputStatistics"] = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                rowCount=summary.get("records"), size=summary.get("bytes"), fileCount=summary.get("pages")
            )
        return OperatorLineage(
            inputs=[ol_dataset(api)], outputs=[ol_dataset(partition.uri(self.bucket), facets)]
        )
