"""The operator of the processing DAGs: run-now of a bundle medallion job, with its OpenLineage lineage.

The bundle's jobs (``databricks/resources/*.job.yml``) read one raw partition and write, under the job
parameter ``output_root``, ``bronze/dt=<date>/``, ``silver/dt=<date>/`` and ``gold/<table>/dt=<date>/``; the
gold task's exit value names its tables. This operator reports exactly that to OpenLineage (docs/LINEAGE.md).
"""

from __future__ import annotations

import json
from typing import Any

from airbricks.databricks.operators import AirbricksDatabricksRunNowOperator
from airbricks.databricks.repair import current_attempts, get_run_with_history

GOLD_TASK_KEY = "gold"


class MedallionRunNowOperator(AirbricksDatabricksRunNowOperator):
    """:class:`~airbricks.databricks.operators.AirbricksDatabricksRunNowOperator` for a bronze -> silver ->
    gold bundle job, reporting its lineage to OpenLineage when the OpenLineage provider is configured.

    The Airflow task run gets the raw partition (job parameter ``partition_path``) as input and the lake
    folders of all three layers as outputs; each Databricks task (``bronze``, ``silver``, ``gold``) is
    emitted as a child run of it, raw -> bronze -> silver -> gold. With
    ``openlineage_inject_parent_job_info=True`` the provider also passes the parent run to the job as the
    ``OPENLINEAGE_CONTEXT`` job parameter (which the bundle jobs declare), for a Spark OpenLineage listener
    on the cluster. Accepts every argument of its parent.
    """

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> int | None:
        run_id = super().execute_complete(context, event)
        self.run_id = run_id
        return run_id

    def _layer_runs(self) -> tuple[str, dict[str, list[str]], list[Any]]:
        from airbricks.lineage import LAYERS, DatabricksTaskRun, lake_layer_uris, layer_io
        from airbricks.partitions import RawPartition

        run = get_run_with_history(self._hook, int(self.run_id))
        params = {p["name"]: p.get("value", p.get("default")) for p in run.get("job_parameters") or []}
        partition = RawPartition.from_uri(str(params["partition_path"]))
        attempts = current_attempts(run)
        tables: list[str] = []
        if GOLD_TASK_KEY in attempts:
            output = self._hook.get_run_output(int(attempts[GOLD_TASK_KEY]["run_id"]))
            result = (output.get("notebook_output") or {}).get("result") or "{}"
            tables = sorted((json.loads(result).get("tables") or {}).keys())
        layers = lake_layer_uris(str(params["output_root"]), partition.relative_prefix, tables)
        partition_uri = str(params["partition_path"])
        runs = [
            DatabricksTaskRun(
                task_key=layer,
                run_id=int(attempts[layer]["run_id"]),
                start_time_ms=int(attempts[layer].get("start_time") or 0),
                end_time_ms=int(attempts[layer].get("end_time") or 0),
                run_page_url=str(attempts[layer].get("run_page_url") or ""),
                inputs=inputs,
                outputs=outputs,
            )
            for layer, (inputs, outputs) in layer_io(partition_uri, layers).items()
            if layer in attempts and (attempts[layer].get("state") or {}).get("result_state") == "SUCCESS"
        ]
        return partition_uri, {layer: layers[layer] for layer in LAYERS}, runs

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Raw partition in, bronze/silver/gold lake folders out; emits the Databricks tasks as child runs."""
        from airflow.providers.openlineage.extractors import OperatorLineage

        from airbricks.lineage import emit_databricks_task_runs, ol_dataset

        if self.run_id is None:
            return OperatorLineage()
        partition_uri, layers, runs = self._layer_runs()
        emit_databricks_task_runs(task_instance, self._hook.host, runs)
        return OperatorLineage(
            inputs=[ol_dataset(partition_uri)],
            outputs=[ol_dataset(uri) for uris in layers.values() for uri in uris],
        )
