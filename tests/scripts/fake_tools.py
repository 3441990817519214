"""Fake ``docker``, ``kind``, ``kubectl`` and ``helm`` for testing scripts/kind.sh without a cluster.

Each fake is this file run as ``python fake_tools.py <tool> <args...>`` through a tiny wrapper on PATH. Every
call is appended to ``$FAKE_LOG`` (JSON lines: tool, argv, stdin for ``apply -f -``), and the little state
the script reads back (clusters, Secrets, nodes) lives in ``$FAKE_STATE`` (JSON), so a second run sees what
the first one created. Versions can be overridden with ``FAKE_<TOOL>_VERSION``; ``FAKE_DOCKER_DOWN=1``
makes the daemon unreachable.
"""

from __future__ import annotations

import base64
import json
import os
import pathlib
import sys
from typing import Any

VERSIONS = {
    "docker": "27.3.1",
    "kind": "kind v0.31.0 go1.25.1 linux/amd64",
    "kubectl": "Client Version: v1.33.2\nKustomize Version: v5.6.0",
    "helm": "v3.19.0",
}
IMAGE_ID = "sha256:" + "0123456789ab" + "cd" * 26


def _load() -> dict[str, Any]:
    path = pathlib.Path(os.environ["FAKE_STATE"])
    if path.is_file():
        return json.loads(path.read_text())
    return {"clusters": [], "secrets": {}, "applied": [], "local_dags_nodes": False}


def _save(state: dict[str, Any]) -> None:
    pathlib.Path(os.environ["FAKE_STATE"]).write_text(json.dumps(state, indent=1))


def _log(tool: str, argv: list[str], stdin: str | None = None) -> None:
    with open(os.environ["FAKE_LOG"], "a") as handle:
        handle.write(json.dumps({"tool": tool, "argv": argv, "stdin": stdin}) + "\n")


def _version(tool: str) -> str:
    return os.environ.get(f"FAKE_{tool.upper()}_VERSION", VERSIONS[tool])


def docker(argv: list[str], state: dict[str, Any]) -> int:
    if argv[:1] == ["version"]:
        print(_version("docker"))
    elif argv[:1] == ["info"]:
        return 1 if os.environ.get("FAKE_DOCKER_DOWN") else 0
    elif argv[:2] == ["image", "inspect"]:
        print(IMAGE_ID)
    return 0


def kind(argv: list[str], state: dict[str, Any]) -> int:
    name = argv[argv.index("--name") + 1] if "--name" in argv else "kind"
    if argv[:1] == ["version"]:
        print(_version("kind"))
    elif argv[:2] == ["get", "clusters"]:
        for cluster in state["clusters"]:
            print(cluster)
        if not state["clusters"]:
            print("No kind clusters found.", file=sys.stderr)
    elif argv[:2] == ["create", "cluster"]:
        if name in state["clusters"]:
            print(
                f'ERROR: failed to create cluster: node(s) already exist for a cluster with the name "{name}"'
            )
            return 1
        config = pathlib.Path(argv[argv.index("--config") + 1]).read_text()
        state["clusters"].append(name)
        state["cluster_config"] = config
        state["local_dags_nodes"] = "airbricks.dev/local-dags" in config
    elif argv[:2] == ["delete", "cluster"]:
        state["clusters"] = [cluster for cluster in state["clusters"] if cluster != name]
        state["secrets"] = {}
    return 0


def _strip_globals(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in {"--context", "--namespace", "-n"}:
            skip = True
        else:
            out.append(arg)
    return out


def _secret_from_files(argv: list[str]) -> dict[str, str]:
    data = {}
    for arg in argv:
        if arg.startswith("--from-file="):
            key, _, path = arg.removeprefix("--from-file=").partition("=")
            data[key] = pathlib.Path(path).read_text()
    return data


def kubectl(argv: list[str], state: dict[str, Any], stdin: str | None) -> int:
    args = _strip_globals(argv)
    if args[:1] == ["version"]:
        print(_version("kubectl"))
    elif args[:2] == ["get", "secret"]:
        secret = state["secrets"].get(args[2])
        if secret is None:
            print(f'Error from server (NotFound): secrets "{args[2]}" not found', file=sys.stderr)
            return 1
        for arg in args:
            if arg.startswith("jsonpath={.data.") or arg.startswith("-ojsonpath={.data."):
                key = arg.split("{.data.", 1)[1].rstrip("}")
                print(base64.b64encode(secret[key].encode()).decode(), end="")
    elif args[:3] == ["create", "secret", "generic"]:
        name, data = args[3], _secret_from_files(args)
        if "--dry-run=client" in args:
            print(json.dumps({"kind": "Secret", "metadata": {"name": name}, "stringData": data}))
        elif name in state["secrets"]:
            print(f'error: failed to create secret secrets "{name}" already exists', file=sys.stderr)
            return 1
        else:
            state["secrets"][name] = data
    elif args[:1] == ["apply"]:
        source = args[args.index("-f") + 1]
        if source == "-" and stdin:
            try:
                document = json.loads(stdin)
            except json.JSONDecodeError:
                document = None
            if document and document.get("kind") == "Secret":
                state["secrets"][document["metadata"]["name"]] = document["stringData"]
        state["applied"].append(source)
    elif args[:2] == ["get", "nodes"]:
        if state["local_dags_nodes"]:
            print("node/airbricks-worker")
    elif args[:2] == ["get", "namespace"]:
        return 0 if state["clusters"] else 1
    return 0


def helm(argv: list[str], state: dict[str, Any]) -> int:
    if argv[:1] == ["version"]:
        print(_version("helm"))
    return 0


def main() -> int:
    tool, argv = sys.argv[1], sys.argv[2:]
    stdin = None
    if tool == "kubectl" and argv[-2:] == ["-f", "-"]:
        stdin = sys.stdin.read()
    _log(tool, argv, stdin)
    state = _load()
    if tool == "docker":
        code = docker(argv, state)
    elif tool == "kind":
        code = kind(argv, state)
    elif tool == "kubectl":
        code = kubectl(argv, state, stdin)
    else:
        code = helm(argv, state)
    _save(state)
    return code


if __name__ == "__main__":
    sys.exit(main())
