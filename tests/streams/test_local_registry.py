"""deploy/registry/registry.sh through streams/local_registry.py: a real Apicurio Registry
on 127.0.0.1, its Confluent-compatible API, its file storage across restarts."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import pytest

from streams.local_registry import LocalRegistry

CT = {"Content-Type": "application/vnd.schemaregistry.v1+json"}


def call(url: str, method: str = "GET", body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=CT)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


def schema(*fields: str) -> str:
    return json.dumps({"type": "record", "name": "T", "namespace": "test.local",
                       "fields": [{"name": f, "type": "int"} for f in fields]})


def test_shared_registry_serves_ccompat_on_loopback_only(schema_registry):
    assert schema_registry.url.startswith("http://127.0.0.1:")
    assert isinstance(call(schema_registry.url + "/subjects"), list)
    assert schema_registry.is_running()
    # Bound to 127.0.0.1, not to every address: another local address is refused.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.2", schema_registry.port), timeout=2).close()


def test_backward_compatibility_is_enforced_per_subject(schema_registry):
    subject = f"{schema_registry.port}-local-registry-test-value"
    call(f"{schema_registry.url}/config/{subject}", "PUT", {"compatibility": "BACKWARD"})
    first = call(f"{schema_registry.url}/subjects/{subject}/versions", "POST", {"schema": schema("a")})
    again = call(f"{schema_registry.url}/subjects/{subject}/versions", "POST", {"schema": schema("a")})
    assert again["id"] == first["id"]
    with pytest.raises(urllib.error.HTTPError) as err:  # a new field without default
        call(f"{schema_registry.url}/subjects/{subject}/versions", "POST", {"schema": schema("a", "b")})
    assert err.value.code == 409
    fetched = call(f"{schema_registry.url}/schemas/ids/{first['id']}")
    assert json.loads(fetched["schema"])["fields"] == [{"name": "a", "type": "int"}]


def test_file_storage_keeps_ids_across_a_restart(tmp_path):
    registry = LocalRegistry(data_dir=tmp_path / "reg", storage="file")
    try:
        registry.start()
        sid = call(f"{registry.url}/subjects/kept-value/versions", "POST", {"schema": schema("k")})["id"]
        registry.stop()
        assert not registry.is_running()
        registry.start()
        assert call(f"{registry.url}/subjects") == ["kept-value"]
        assert json.loads(call(f"{registry.url}/schemas/ids/{sid}")["schema"])["fields"][0]["name"] == "k"
    finally:
        registry.stop()
    assert not registry.is_running()
    assert (tmp_path / "reg" / "registry.log").exists()  # a given data dir is kept
