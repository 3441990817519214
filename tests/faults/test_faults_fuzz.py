"""Property-based faults (hypothesis): generated bad ``sources.yaml`` entries and API page bodies, and the
raw-zone publish protocol under random S3 faults.

Every family below is one line in ``make reliability``: the property is checked on every generated input
(the figure in the line is how many), and the first counter-example, shrunk, fails the test.

- A bad ``sources.yaml`` entry is refused with :class:`SourceConfigError` naming the file, the source and
  the field, never another exception (a traceback of ours).
- A bad page body, served over real HTTP by the replay server as page 2 of a walk, fails the ingestion with
  :class:`PageValidationError` naming ``source/dataset: page 2``, and nothing is published: no manifest, no
  part left in the partition.
- The publish protocol (:class:`RawZoneWriter`), driven by a state machine through the S3 fault proxy: a
  reader never sees a manifest listing a part that is missing or whose sha256 differs, nor parts of two runs.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from faults_proxy import FaultProxy, Rule
from faults_support import REPO_ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from airbricks.ingestion.config import SourceConfigError, parse_sources

pytestmark = [pytest.mark.faults, pytest.mark.integration]

SOURCES_YAML = yaml.safe_load((REPO_ROOT / "dags" / "sources.yaml").read_text())
SOURCE = "github"  # the base entry every generated one is derived from
FUZZ_SETTINGS = settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def _run_property(prop: Callable[[], None]) -> Exception | None:
    try:
        prop()
    except Exception as exc:  # the shrunk counter-example; re-raised after the outcome is recorded
        return exc
    return None


# ---- sources.yaml ---------------------------------------------------------------------------------------
def _set(document: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = document
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value


TEXT = st.text(max_size=12)
NOT_A_NUMBER = st.one_of(
    st.text(min_size=1, max_size=8).filter(lambda s: not _is_number(s)), st.lists(st.integers(), max_size=2)
)
NOT_A_MAPPING = st.one_of(st.integers(), st.text(max_size=8), st.lists(st.integers(), max_size=2))


def _is_iso_date(text: str) -> bool:
    try:
        datetime.date.fromisoformat(text.strip())
    except ValueError:
        return False
    return len(text.strip()) == 10


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


D = ("datasets", "issues")
# (family, path under the source, generator of values that must be refused there)
BAD_FIELDS: dict[str, list[tuple[tuple[str, ...], st.SearchStrategy[Any]]]] = {
    "source fields": [
        (("owner",), st.sampled_from(["", "airflow", " Airflow "])),
        (("schedule",), st.just("")),
        (
            ("start_date",),
            st.one_of(
                st.text(max_size=10).filter(lambda s: not _is_iso_date(s)),
                st.integers(),
                st.floats(allow_nan=False),
                st.just("2026-13-01"),
            ),
        ),
        (("end_date",), st.dates(max_value=datetime.date(2026, 10, 31))),  # before start_date 2026-11-01
        (("max_active_runs",), st.one_of(st.integers(max_value=0), NOT_A_NUMBER)),
        (("catchup",), st.sampled_from(["sometimes", "maybe", [1]])),
        (("tags",), st.sampled_from([{"a": 1}, 7, [{"a": 1}], ["ok", ["nested"]], [3]])),
        (("datasets",), st.one_of(st.just({}), NOT_A_MAPPING)),
    ],
    "dataset fields": [
        (("datasets", "Bad-Name"), st.just({"path": "/x"})),
        (
            (*D, "path"),
            st.one_of(
                st.just(""),
                st.text(max_size=10).filter(lambda s: not s.startswith("/")),
                st.just("https://api.example/x"),
            ),
        ),
        (
            (*D, "query_params"),
            st.one_of(
                st.lists(st.integers(), max_size=2),
                st.dictionaries(TEXT, st.dictionaries(TEXT, TEXT, min_size=1), min_size=1),
            ),
        ),
        ((*D, "required_fields"), st.sampled_from([{"a": 1}, 3])),
        (
            (*D, "pagination", "style"),
            st.text(max_size=10).filter(
                lambda s: s not in {"none", "page_number", "offset", "cursor", "link_header"}
            ),
        ),
        ((*D, "pagination"), st.just({"style": "cursor"})),  # cursor_param and cursor_path missing
        ((*D, "pagination"), st.builds(lambda n: {"style": "offset", "limit": n}, st.integers(max_value=0))),
    ],
    "http/task/auth policy": [
        (("http", "max_attempts"), st.one_of(st.integers(max_value=0), st.integers(min_value=51))),
        (
            ("http", "connect_timeout_seconds"),
            st.one_of(st.floats(max_value=0, allow_nan=False), NOT_A_NUMBER),
        ),
        (("http", "backoff_max_seconds"), st.floats(max_value=-0.001, allow_nan=False, allow_infinity=False)),
        (("task", "retries"), st.integers(max_value=1)),
        (("task", "retry_delay_seconds"), st.floats(max_value=0, allow_nan=False)),
        (("task", "on_failure_callback"), st.sampled_from(["not a path", "x", "1abc.def", "pkg..fn"])),
        (
            ("auth", "type"),
            st.text(max_size=10).filter(
                lambda s: s not in {"none", "bearer", "basic", "api_key_header", "api_key_query"}
            ),
        ),
    ],
    "unknown keys (typos)": [
        (("shedule",), st.just("@daily")),
        (("http", "max_attempt"), st.just(3)),
        ((*D, "record_path"), st.just("items")),
        ((*D, "pagination", "page_parm"), st.just("p")),
        (("task", "retrys"), st.just(3)),
    ],
}


def _entries(family: str) -> st.SearchStrategy[tuple[tuple[str, ...], Any]]:
    return st.one_of([st.tuples(st.just(path), values) for path, values in BAD_FIELDS[family]])


def _document_with(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    document = copy.deepcopy(SOURCES_YAML)
    _set(document["sources"][SOURCE], path, value)
    return document


def _names_the_field(message: str, path: tuple[str, ...]) -> bool:
    """The error names the file, the source and the mutated field (its last key, or the dataset name)."""
    named = path[-1] if path[-1] != "pagination" else "pagination"
    if path[:1] == ("datasets",) and len(path) == 2:
        named = path[1] if path[1] == "Bad-Name" else "datasets"
    return f"sources.yaml: source '{SOURCE}'" in message and named in message and "Traceback" not in message


@pytest.mark.parametrize("family", sorted(BAD_FIELDS))
def test_fuzz_sources_yaml_bad_entries(family: str, record_fault: Callable[..., Any]) -> None:
    seen: Counter[str] = Counter()

    @FUZZ_SETTINGS
    @given(_entries(family))
    def prop(entry: tuple[tuple[str, ...], Any]) -> None:
        path, value = entry
        with pytest.raises(SourceConfigError) as refused:
            parse_sources(_document_with(path, value), origin="dags/sources.yaml", only=SOURCE)
        message = str(refused.value)
        assert _names_the_field(message, path), f"{'.'.join(path)}={value!r}: {message}"
        seen["refused"] += 1

    failure = _run_property(prop)
    record_fault(
        f"fuzz: sources.yaml {family}",
        "every bad value refused, naming file, source and field; never another exception",
        f"{seen['refused']} generated entries refused with SourceConfigError naming the field"
        + (f"; counter-example: {str(failure)[:200]}" if failure else ""),
        failure is None,
    )
    assert failure is None, failure


def _structure_mutations() -> st.SearchStrategy[tuple[str, Any]]:
    """(what the error must name, a document whose structure is wrong there)."""

    def with_sources(value: Any) -> dict[str, Any]:
        return {**copy.deepcopy(SOURCES_YAML), "sources": value}

    def with_source_settings(value: Any) -> dict[str, Any]:
        document = copy.deepcopy(SOURCES_YAML)
        document["sources"][SOURCE] = value
        return document

    return st.one_of(
        st.tuples(st.just("top level"), NOT_A_MAPPING),
        st.tuples(
            st.just("unknown top-level keys"),
            st.text(min_size=1, max_size=8)
            .filter(lambda k: k not in {"defaults", "sources"})
            .map(lambda k: {**copy.deepcopy(SOURCES_YAML), k: 1}),
        ),
        st.tuples(st.just("'sources'"), st.one_of(st.just({}), NOT_A_MAPPING).map(with_sources)),
        st.tuples(
            st.just("'defaults'"),
            st.one_of(  # falsy values count as "no defaults"
                st.integers(min_value=1), st.text(min_size=1, max_size=8), st.lists(st.integers(), min_size=1)
            ).map(lambda v: {**copy.deepcopy(SOURCES_YAML), "defaults": v}),
        ),
        st.tuples(st.just(f"source '{SOURCE}'"), NOT_A_MAPPING.map(with_source_settings)),
    )


def test_fuzz_sources_yaml_document_structure(record_fault: Callable[..., Any]) -> None:
    seen: Counter[str] = Counter()

    @FUZZ_SETTINGS
    @given(_structure_mutations())
    def prop(case: tuple[str, Any]) -> None:
        named, document = case
        with pytest.raises(SourceConfigError) as refused:
            parse_sources(document, origin="dags/sources.yaml", only=SOURCE)
        message = str(refused.value)
        assert message.startswith("dags/sources.yaml: "), message
        assert named in message, message
        seen["refused"] += 1

    failure = _run_property(prop)
    record_fault(
        "fuzz: sources.yaml document structure",
        "refused naming the file and the key (top level, sources, defaults, the source)",
        f"{seen['refused']} generated documents refused with SourceConfigError"
        + (f"; counter-example: {str(failure)[:200]}" if failure else ""),
        failure is None,
    )
    assert failure is None, failure


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
ANY_PATH = st.sampled_from(
    [path for family in BAD_FIELDS.values() for path, _ in family]
    + [("description",), ("conn_id",), (*D, "records_path"), (*D, "headers"), ("http",), ("task",)]
)


def test_fuzz_sources_yaml_any_value_anywhere(record_fault: Callable[..., Any]) -> None:
    """Arbitrary YAML values at any field: accepted, or refused naming the source; nothing else escapes."""
    seen: Counter[str] = Counter()

    @FUZZ_SETTINGS
    @given(ANY_PATH, JSON_VALUES)
    def prop(path: tuple[str, ...], value: Any) -> None:
        message = ""
        try:
            parse_sources(_document_with(path, value), origin="dags/sources.yaml", only=SOURCE)
        except SourceConfigError as exc:
            message = str(exc)
        if message:
            assert f"source '{SOURCE}': field '" in message, message
            seen["refused"] += 1
        else:
            seen["accepted"] += 1

    failure = _run_property(prop)
    record_fault(
        "fuzz: sources.yaml any value at any field",
        "accepted, or SourceConfigError naming source and field; no other exception",
        f"{seen['refused']} refused naming the field, {seen['accepted']} valid"
        + (f"; counter-example: {str(failure)[:200]}" if failure else ""),
        failure is None,
    )
    assert failure is None, failure


# ---- API page bodies ------------------------------------------------------------------------------------
FUZZ_SOURCE, FUZZ_DATASET, FUZZ_PATH = "fuzzapi", "items", "/fuzz/items"
FUZZ_CONFIG = {
    "path": FUZZ_PATH,
    "records_path": "data.items",
    "required_fields": ["id"],
    "pagination": {
        "style": "page_number",
        "page_param": "page",
        "start_page": 1,
        "total_pages_path": "pages",
    },
}
RECORD = st.fixed_dictionaries({"id": st.integers(min_value=1)}, optional={"title": st.text(max_size=8)})
GOOD_PAGE = {"data": {"items": [{"id": 1}]}, "pages": 2}


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


BAD_PAGES: dict[str, st.SearchStrategy[bytes]] = {
    "not JSON": st.one_of(
        st.binary(min_size=1, max_size=40).filter(lambda b: not _parses(b)),
        st.just(b"<html><body>502 Bad Gateway</body></html>"),
        st.builds(
            lambda body, cut: body[: max(1, len(body) - cut)], st.just(_json(GOOD_PAGE)), st.integers(1, 20)
        ),
    ),
    "records_path missing or not a list": st.one_of(
        st.dictionaries(st.text(max_size=5).filter(lambda k: k != "data"), JSON_VALUES, max_size=3).map(
            _json
        ),
        st.builds(
            lambda v: _json({"data": {"items": v}, "pages": 2}),
            JSON_VALUES.filter(lambda v: not isinstance(v, list)),
        ),
        st.builds(
            lambda v: _json({"data": v, "pages": 2}), JSON_VALUES.filter(lambda v: not isinstance(v, dict))
        ),
        JSON_VALUES.filter(lambda v: not isinstance(v, dict)).map(_json),
    ),
    "records not objects / required field missing": st.one_of(
        st.builds(
            lambda good, bad: _json({"data": {"items": [*good, bad]}, "pages": 2}),
            st.lists(RECORD, max_size=3),
            st.one_of(st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=2), st.none()),
        ),
        st.builds(
            lambda good, bad: _json({"data": {"items": [*good, bad]}, "pages": 2}),
            st.lists(RECORD, max_size=3),
            st.one_of(
                st.just({}),
                st.just({"id": None}),
                st.dictionaries(st.text(max_size=4).filter(lambda k: k != "id"), st.integers(), max_size=2),
            ),
        ),
    ),
    "pagination value missing or not an integer": st.builds(
        lambda records, pages: _json({"data": {"items": records}, **pages}),
        st.lists(RECORD, min_size=1, max_size=3),
        st.one_of(
            st.just({}),
            st.builds(
                lambda v: {"pages": v},
                st.one_of(
                    st.none(),
                    st.booleans(),
                    st.floats(allow_nan=False),
                    st.text(max_size=4).filter(lambda s: not s.strip().lstrip("+-").isdigit()),
                    st.lists(st.integers(), max_size=2),
                ),
            ),
        ),
    ),
}


def _parses(body: bytes) -> bool:
    try:
        json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return False
    return True


@pytest.mark.parametrize("family", sorted(BAD_PAGES))
def test_fuzz_api_page_bodies(
    family: str, replay_server: Any, s3_server: Any, record_fault: Callable[..., Any]
) -> None:
    from airbricks.ingestion.config import DatasetConfig, HttpPolicy
    from airbricks.ingestion.http import ApiEndpoint
    from airbricks.ingestion.ingest import ingest_interval
    from airbricks.ingestion.pagination import PageValidationError

    bucket = "fuzz-raw"
    s3_server.reset()
    s3_server.create_bucket(bucket)
    s3 = s3_server.client()
    config = DatasetConfig.model_validate(FUZZ_CONFIG)
    policy = HttpPolicy(max_attempts=1, backoff_initial_seconds=0, backoff_max_seconds=0)
    prefix = f"raw/{FUZZ_SOURCE}/{FUZZ_DATASET}/"
    seen: Counter[str] = Counter()
    replay_server.add_route("GET", FUZZ_PATH, _json(GOOD_PAGE), match={"page": "1"})

    @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(BAD_PAGES[family])
    def prop(body: bytes) -> None:
        replay_server.add_route(
            "GET", FUZZ_PATH, body, match={"page": "2"}, headers={"Content-Type": "application/json"}
        )
        with pytest.raises(PageValidationError) as refused:
            ingest_interval(
                source=FUZZ_SOURCE,
                dataset=FUZZ_DATASET,
                config=config,
                endpoint=ApiEndpoint(FUZZ_SOURCE, replay_server.url),
                http_policy=policy,
                s3=s3,
                bucket=bucket,
                interval_start=datetime.datetime(2026, 11, 19, tzinfo=datetime.UTC),
                interval_end=datetime.datetime(2026, 11, 20, tzinfo=datetime.UTC),
                run_id=f"fuzz-{seen['examples']}",
                sleep=lambda _: None,
            )
        message = str(refused.value)
        assert f"{FUZZ_SOURCE}/{FUZZ_DATASET}: page 2" in message, message
        left = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("KeyCount", 0)
        assert left == 0, f"{left} object(s) left under {prefix} after a refused page: {message}"
        seen["examples"] += 1

    failure = _run_property(prop)
    record_fault(
        f"fuzz: API page body {family}",
        "ingestion fails naming source/dataset and page; nothing published, nothing left behind",
        f"{seen['examples']} generated bodies refused as page 2 with PageValidationError, 0 objects left"
        + (f"; counter-example: {str(failure)[:200]}" if failure else ""),
        failure is None,
    )
    assert failure is None, failure


# ---- the publish protocol under random S3 faults ---------------------------------------------------------
S3_FAULTS = [
    None,
    ("PUT", r"/part-\d+\.json$"),  # a part upload (direct) or a copy over the final key (staged)
    ("PUT", r"/_staging/"),  # a staged part upload
    ("PUT", r"/_manifest\.json$"),  # the manifest, written last
    ("DELETE", r"/_manifest\.json$"),  # staged publish: readers stop trusting the old partition
    ("POST", r"\?delete"),  # batch delete: stale parts, staging, abort's cleanup
    ("GET", r"list-type=2"),  # listing (begin, publish's stale scan)
    ("HEAD", r"/_manifest\.json$"),  # begin's "is it published?"
]


class PublishProtocol(RuleBasedStateMachine):
    """Runs publish the same partition again and again, some failing under an S3 fault; a reader checks."""

    proxy: FaultProxy
    faulty_s3: Any  # boto3 client through the fault proxy, no retries: every fault reaches the writer
    reader_s3: Any  # direct client: what a downstream reader sees
    bucket: str
    stats: Counter[str]

    def __init__(self) -> None:
        super().__init__()
        from airbricks.partitions import RawPartition

        self.stats["machines"] += 1
        self.partition = RawPartition.for_interval(
            "fuzzpub",
            f"d{self.stats['machines']}",
            datetime.datetime(2026, 11, 19, tzinfo=datetime.UTC),
            datetime.datetime(2026, 11, 20, tzinfo=datetime.UTC),
        )
        self.runs = 0
        self.last_success: str | None = None

    @rule(pages=st.integers(1, 4), fault=st.sampled_from(S3_FAULTS), after=st.integers(0, 3))
    def publish(self, pages: int, fault: tuple[str, str] | None, after: int) -> None:
        from airbricks.ingestion.raw_zone import RawZoneWriter

        self.runs += 1
        run_id = f"run-{self.runs}"
        self.proxy.clear_rules()
        if fault is not None:
            # Let `after` matching requests through, then reset the next one.
            self.proxy.add_rule(Rule(fault[0], fault[1], times=1, skip=after))
        writer = RawZoneWriter(self.faulty_s3, self.bucket, self.partition, run_id)
        try:
            writer.begin()
            for page in range(1, pages + 1):
                body = _json({"run": run_id, "page": page, "records": [{"id": f"{run_id}-{page}"}]})
                writer.stage(page, body, 1, f"http://api.example/p{page}")
            writer.publish()
        except Exception:
            self.stats["failed"] += 1
            try:
                writer.abort()
            except Exception:  # abort itself may hit the fault; the reader check is what matters
                self.stats["abort failed"] += 1
        else:
            self.stats["published"] += 1
            self.last_success = run_id
        finally:
            self.proxy.clear_rules()

    @invariant()
    def reader_sees_one_whole_run(self) -> None:
        from airbricks.ingestion.raw_zone import read_manifest

        manifest = read_manifest(self.reader_s3, self.bucket, self.partition.prefix)
        if manifest is None:
            self.stats["reads: unpublished"] += 1
            return
        runs = set()
        for part in manifest["parts"]:
            try:
                body = self.reader_s3.get_object(Bucket=self.bucket, Key=part["key"])["Body"].read()
            except self.reader_s3.exceptions.NoSuchKey as exc:
                raise AssertionError(
                    f"the manifest of {manifest['run_id']} lists a missing part {part['key']}"
                ) from exc
            assert hashlib.sha256(body).hexdigest() == part["sha256"], f"{part['key']}: sha256 differs"
            runs.add(json.loads(body)["run"])
        assert runs == {manifest["run_id"]}, f"a reader sees parts of runs {sorted(runs)}"
        self.stats["reads: one whole run"] += 1


def test_fuzz_publish_protocol_under_random_s3_faults(
    s3_server: Any, record_fault: Callable[..., Any]
) -> None:
    import boto3
    from botocore.config import Config

    bucket = "fuzz-publish"
    s3_server.reset()
    s3_server.create_bucket(bucket)
    stats: Counter[str] = Counter()
    with FaultProxy("127.0.0.1", s3_server.port) as proxy:
        PublishProtocol.proxy = proxy
        PublishProtocol.faulty_s3 = boto3.client(
            "s3",
            endpoint_url=proxy.endpoint_url,
            region_name="us-east-1",
            config=Config(
                retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=2, read_timeout=5
            ),
        )
        PublishProtocol.reader_s3 = s3_server.client()
        PublishProtocol.bucket = bucket
        PublishProtocol.stats = stats
        failure = _run_property(
            lambda: run_state_machine_as_test(
                PublishProtocol,
                settings=settings(max_examples=6, stateful_step_count=6, deadline=None, database=None),
            )
        )
    record_fault(
        "fuzz: publish protocol under random S3 faults",
        "a manifest never lists a missing or sha-mismatched part; a reader never sees two runs mixed",
        f"{stats['published']} publishes ok, {stats['failed']} failed under a fault; reader checks: "
        f"{stats['reads: one whole run']} whole runs, {stats['reads: unpublished']} unpublished"
        + (f"; counter-example: {str(failure)[:300]}" if failure else ""),
        failure is None,
    )
    assert failure is None, failure
