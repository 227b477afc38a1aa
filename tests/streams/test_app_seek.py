"""The worker seeks its stream partitions to the committed offsets itself, before faust
resumes them (streams.app, the on_rebalance_complete handler): faust-streaming 0.15.3
resumes them first and then seeks with a timeout that returns silently, so the fetcher may
read on from where the partitions stood. Without a broker: the faust app with a fake
consumer."""

from __future__ import annotations

import asyncio
import inspect

import faust.tables.recovery as recovery
import pytest

import streams.app as app_module
from streams.app import create_app
from streams.settings import StreamSettings


class FakeConsumer:
    def __init__(self, seek_forever: bool = False):
        self.seek_forever = seek_forever
        self.seeks = 0

    async def perform_seek(self):
        self.seeks += 1
        if self.seek_forever:  # the group coordinator on a dead broker
            await asyncio.Event().wait()

    def assignment(self):
        return set()


def ready_handler(tmp_path, outage_window: float = 300):
    app = create_app(StreamSettings(data_dir=str(tmp_path), outage_window=outage_window))
    [handler] = [r for r in app.on_rebalance_complete.iter_receivers(app) if r.__name__ == "_ready"]
    return app, handler


def test_the_partitions_are_sought_to_the_committed_offsets_when_the_tables_are_ready(tmp_path):
    app, ready = ready_handler(tmp_path)
    app._consumer = consumer = FakeConsumer()
    asyncio.run(ready(app))
    assert consumer.seeks == 1


def test_a_seek_that_never_ends_stops_the_worker_without_acking(tmp_path, monkeypatch):
    stopped = []

    def stop(status):
        stopped.append(status)
        raise SystemExit(status)
    monkeypatch.setattr(app_module, "stop_without_acking", stop)
    app, ready = ready_handler(tmp_path, outage_window=0.2)
    app._consumer = FakeConsumer(seek_forever=True)
    with pytest.raises(SystemExit):
        asyncio.run(ready(app))
    assert stopped == [app_module.EXIT_BATCH_FAILED]


def test_faust_sends_on_rebalance_complete_before_it_resumes_the_stream_partitions():
    """What the handler relies on, in the installed faust: if an upgrade changes the
    order, this fails and the seek must move."""
    source = inspect.getsource(recovery.Recovery.on_recovery_completed)
    assert "on_rebalance_complete.send()" in source and "resume_partitions(" in source
    assert source.index("on_rebalance_complete.send()") < source.index("resume_partitions(")
