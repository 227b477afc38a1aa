"""Kafka Connect into PostgreSQL, the operators' way (deploy/connect/): Debezium's JDBC sink
connector reads `worker-file-rows` with Apicurio Registry's AvroConverter and keeps one row
per worker in `worker_file_rows`, deleting it on a tombstone.

This module holds what the Python side does for it:

- `register_row_schemas(registry)`: puts every WorkerFileRow schema (each release's and the
  current one) into Apicurio Registry under the coordinates the rows' headers name
  (`streams.codec`: group `workerfile`, artifact `cn.workerfile.WorkerFileRow`, version =
  the schema's fingerprint in hex), through the registry's own API (`/apis/registry/v2`).
  Idempotent: a version already there is left alone. `workerfile connect register` runs it.
- `LocalConnect`: a throw-away Connect worker (deploy/connect/connect.sh, standalone) for
  tests and development, like `streams.local_kafka.LocalKafka`.
- `ConnectRest`: the few calls of Connect's REST API that operators use (connectors and
  their status, create or update a connector).

Standard library only.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from schemas.avro import released_versions
from streams import codec
from streams.local_server import ScriptServer, free_ports

CONNECT_DIR = Path(__file__).resolve().parents[1] / "deploy" / "connect"
CONNECT_SH = CONNECT_DIR / "connect.sh"
SINK_PROPERTIES = CONNECT_DIR / "worker-file-rows-sink.properties"
SINK_JSON = CONNECT_DIR / "worker-file-rows-sink.json"
TABLE_SQL = CONNECT_DIR / "worker_file_rows.sql"
SINK_NAME = "worker-file-rows-sink"
REGISTRY_API = "/apis/registry/v2"


class ConnectError(RuntimeError):
    """A call to the registry or to Connect failed; the message says which and why."""


# --- the row schemas in Apicurio Registry -------------------------------------------------

def registry_api(url: str) -> str:
    """Apicurio Registry's own API from its root (http://HOST:PORT) or the API URL itself."""
    url = url.rstrip("/")
    if url.endswith("/apis/ccompat/v7"):
        url = url[: -len("/apis/ccompat/v7")]
    return url if url.endswith(REGISTRY_API) else url + REGISTRY_API


def row_schemas() -> dict[str, dict]:
    """Every WorkerFileRow schema ever released, and the current one: version -> schema."""
    found = {}
    for _, schemas in sorted(released_versions().items()):
        if codec.ROW_RECORD in schemas:
            schema = schemas[codec.ROW_RECORD]
            found[codec.schema_fingerprint(schema).hex()] = schema
    current = codec.CURRENT[codec.ROW_RECORD]
    found.setdefault(codec.row_version(current), load_current_row_schema())
    return found


def load_current_row_schema() -> dict:
    from schemas.avro import SCHEMA_DIR, load_schemas

    return load_schemas(SCHEMA_DIR)[codec.ROW_RECORD]


def _http(method: str, url: str, body: bytes | None = None, headers: dict | None = None,
          timeout: float = 10.0) -> tuple[int, object]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            detail = json.loads(raw) if raw else None
        except ValueError:
            detail = raw.decode("utf-8", "replace")
        return err.code, detail
    except (urllib.error.URLError, OSError) as err:
        raise ConnectError(f"{method} {url}: not reachable: {getattr(err, 'reason', err)}") from None


def register_row_schemas(registry: str) -> list[str]:
    """Registers every WorkerFileRow schema (row_schemas) in the registry at `registry`
    under group `workerfile`, artifact `cn.workerfile.WorkerFileRow`, version = its
    fingerprint; one line per version. Raises ConnectError when the registry refuses."""
    api = registry_api(registry)
    group, artifact = urllib.parse.quote(codec.ROW_GROUP), urllib.parse.quote(codec.ROW_ARTIFACT)
    lines = []
    for version, schema in row_schemas().items():
        meta = f"{api}/groups/{group}/artifacts/{artifact}/versions/{version}/meta"
        status, _ = _http("GET", meta)
        if status == 200:
            lines.append(f"{codec.ROW_GROUP}/{codec.ROW_ARTIFACT} version {version}: ok")
            continue
        body = json.dumps(schema, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "X-Registry-ArtifactType": "AVRO",
                   "X-Registry-Version": version}
        status, _ = _http("GET", f"{api}/groups/{group}/artifacts/{artifact}/meta")
        if status == 404:
            status, answer = _http("POST", f"{api}/groups/{group}/artifacts", body,
                                   {**headers, "X-Registry-ArtifactId": codec.ROW_ARTIFACT})
        else:
            status, answer = _http("POST", f"{api}/groups/{group}/artifacts/{artifact}/versions", body, headers)
        if status not in (200, 201):
            raise ConnectError(f"registry {api} refused {codec.ROW_ARTIFACT} version {version}: HTTP {status} "
                               f"{answer}")
        lines.append(f"{codec.ROW_GROUP}/{codec.ROW_ARTIFACT} version {version}: registered")
    return lines


# --- Connect's REST API ---------------------------------------------------------------------

class ConnectRest:
    """Connect's REST API at `url` (http://127.0.0.1:8083)."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def _call(self, method: str, path: str, body: dict | None = None) -> object:
        data = None if body is None else json.dumps(body).encode()
        status, answer = _http(method, self.url + path, data, {"Content-Type": "application/json"})
        if status >= 300:
            raise ConnectError(f"{method} {path}: HTTP {status}: {answer}")
        return answer

    def connectors(self) -> list[str]:
        return self._call("GET", "/connectors")  # type: ignore[return-value]

    def status(self, name: str = SINK_NAME) -> dict:
        return self._call("GET", f"/connectors/{urllib.parse.quote(name)}/status")  # type: ignore[return-value]

    def put_config(self, config: dict, name: str = SINK_NAME) -> dict:
        """Creates the connector or updates its config (distributed mode)."""
        return self._call("PUT", f"/connectors/{urllib.parse.quote(name)}/config", config)  # type: ignore[return-value]

    def wait_running(self, name: str = SINK_NAME, timeout: float = 120.0) -> dict:
        """The status once the connector and every task are RUNNING; raises ConnectError with
        the task's trace when one FAILED, or after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            try:
                last = self.status(name)
            except ConnectError as err:  # 404 until the herder has created it
                last = str(err)
                time.sleep(0.5)
                continue
            tasks = last.get("tasks") or []  # type: ignore[union-attr]
            failed = [t for t in tasks if t.get("state") == "FAILED"]
            if last["connector"]["state"] == "FAILED" or failed:  # type: ignore[index]
                raise ConnectError(f"connector {name} failed: {json.dumps(last)[:4000]}")
            if last["connector"]["state"] == "RUNNING" and tasks and all(t["state"] == "RUNNING" for t in tasks):  # type: ignore[index]
                return last  # type: ignore[return-value]
            time.sleep(0.5)
        raise ConnectError(f"connector {name} not running after {timeout:.0f} s: {last}")


def sink_config(path: Path = SINK_PROPERTIES) -> dict[str, str]:
    """The connector config of a .properties file (no continuation lines in ours)."""
    config = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")):
            key, _, value = line.partition("=")
            config[key.strip()] = value.strip()
    return config


# --- a throw-away worker ------------------------------------------------------------------

class LocalConnect(ScriptServer):
    """A Kafka Connect worker on 127.0.0.1, started and stopped via connect.sh: standalone,
    running the connector configs `connectors` (default: the worker-file-rows sink), or
    `mode="distributed"` (internal topics of replication 1; create connectors over REST).

    `env`: the connector's environment (WORKERFILE_CONNECT_JDBC_URL, _DB_USER,
    _REGISTRY_URL, ...). port: a free one when None. data_dir: a temporary directory when
    None, deleted by stop(). The log is data_dir/connect.log."""

    NAME = "Kafka Connect"
    SCRIPT = CONNECT_SH
    LOG_NAME = "connect.log"
    ENV_PREFIX = "CONNECT"
    PORT_TAKEN = "not usable"

    def __init__(self, bootstrap: str, env: dict[str, str] | None = None, *, port: int | None = None,
                 data_dir: str | os.PathLike | None = None, connectors: list[Path] | None = None,
                 heap: str | None = None, start_timeout: int = 180, mode: str = "standalone"):
        self.bootstrap = bootstrap
        self.env = dict(env or {})
        self._auto_ports = port is None
        self.port = port or free_ports(1)[0]
        self._temp_dir = data_dir is None
        self.data_dir = Path(tempfile.mkdtemp(prefix="local-connect-") if data_dir is None else data_dir).resolve()
        self.connectors = [Path(c) for c in (connectors or [SINK_PROPERTIES])]
        self.heap = heap
        self.start_timeout = start_timeout
        self.mode = mode
        self._started = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def rest(self) -> ConnectRest:
        return ConnectRest(self.url)

    def _script_env(self) -> dict[str, str]:
        env = {**self.env, "CONNECT_BOOTSTRAP": self.bootstrap, "CONNECT_PORT": str(self.port),
               "CONNECT_DATA_DIR": str(self.data_dir), "CONNECT_START_TIMEOUT": str(self.start_timeout),
               "CONNECT_CONNECTORS": " ".join(map(str, self.connectors)), "CONNECT_MODE": self.mode,
               "CONNECT_REPLICATION": "1"}
        if self.heap is not None:
            env["CONNECT_HEAP"] = self.heap
        return env
