"""The `workerfile` command line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import orjson


def cmd_fold(args: argparse.Namespace) -> int:
    """Fold a file of canonical JSON events with no broker; print one file per line."""
    from processors.batch import fold_lines

    if args.events == "-":
        source, name = sys.stdin.buffer, "<stdin>"
    else:
        path = Path(args.events)
        if not path.is_file():
            print(f"workerfile fold: no such file: {args.events}", file=sys.stderr)
            return 1
        source, name = path.open("rb"), str(path)
    rejects_path = Path(args.rejects) if args.rejects else (
        Path("rejects.jsonl") if args.events == "-" else Path(args.events + ".rejects.jsonl"))
    with source:
        batch = fold_lines(source, file=name)
    out = sys.stdout.buffer
    for file in batch.files():
        out.write(orjson.dumps(file) + b"\n")
    out.flush()
    with rejects_path.open("wb") as fh:
        for reject in batch.rejects:
            fh.write(orjson.dumps(reject) + b"\n")
    summary = batch.counts.summary(len(batch.states))
    where = f" (rejects in {rejects_path})" if batch.rejects else ""
    print(f"workerfile fold: {summary}{where}", file=sys.stderr)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    """Write a generated population of careers as JSON lines (bad lines included unless --clean)."""
    from workerfile.population import generate_population

    out = sys.stdout.buffer
    for event in generate_population(args.workers, seed=args.seed, months=args.months, anomalies=not args.clean):
        out.write((event.encode() if isinstance(event, str) else orjson.dumps(event)) + b"\n")
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    """Create missing topics and verify existing ones, from deploy/topics.toml."""
    from streams.topics import ensure_topics, load_topic_specs

    try:
        for line in ensure_topics(args.broker, load_topic_specs(args.profile, partitions=args.partitions)):
            print(line)
    except RuntimeError as err:
        print(f"workerfile topics: {err}", file=sys.stderr)
        return 1
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Run the stream processors (a faust worker) until stopped."""
    import faust

    from streams.app import create_app
    from streams.settings import StreamSettings

    settings = StreamSettings.from_env(broker=args.broker, app_id=args.app_id, data_dir=args.data_dir,
                                       partitions=args.partitions, web_port=args.web_port)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=args.loglevel, quiet=True)
    worker.execute_from_commandline()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Local Kafka, topics, a worker, a published population, and one worker's file."""
    from workerfile.demo import run_demo

    return run_demo(workers=args.workers, seed=args.seed, keep=args.keep, data_dir=args.data_dir)


def cmd_emit(args: argparse.Namespace) -> int:
    """Validate a CSV or JSONL file of events as a whole, then send it (docs/csv-layouts.md)."""
    from streams.emit import run

    return run(args.file, broker=args.broker, event_type=args.type, source=args.source, encoding=args.encoding,
               format=args.format, partial=args.partial, dry_run=args.dry_run, out=sys.stdout.buffer, err=sys.stderr)


def cmd_sink(args: argparse.Namespace) -> int:
    """Materialise the compacted `worker-files` topic into a SQLite or PostgreSQL table (sinks/)."""
    from sinks.base import open_store
    from sinks.runner import SinkError, run_sink

    db = args.db if args.db is not None else os.environ.get("WORKERFILE_SINK_DB")
    try:
        store = open_store(args.database, db)
    except Exception as err:  # a path that cannot be opened, a server that refuses, psycopg missing
        print(f"workerfile sink: cannot open the {args.database} database: {err}", file=sys.stderr)
        return 1
    with store:
        try:
            stats = run_sink(store, args.broker, group=args.group, once=args.once, batch_size=args.batch_size)
        except SinkError as err:
            print(f"workerfile sink: stopped: {err}", file=sys.stderr)
            return 2
        except Exception as err:  # the broker unreachable, the database gone
            print(f"workerfile sink: failed: {type(err).__name__}: {err}", file=sys.stderr)
            return 1
        print(f"workerfile sink: {stats.summary()}; {store.count()} files in worker_files", file=sys.stderr)
    return 0


def cmd_subscribe(args: argparse.Namespace) -> int:
    """Follow worker-services or worker-file-changes; print or forward each message."""
    from streams.subscribe import http_forwarder, printer, subscribe

    handle = http_forwarder(args.forward) if args.forward else printer(args.what, args.json)
    try:
        count = subscribe(args.broker, args.what, handle, group=args.group, once=args.once, state=args.state)
    except KeyboardInterrupt:
        return 0
    print(f"workerfile subscribe: {count} {args.what} handed on", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workerfile", description="One electronic file per industrial worker.")
    sub = parser.add_subparsers(dest="command", required=True)
    fold = sub.add_parser("fold", help="fold a JSONL file of events offline, print the files as JSON lines")
    fold.add_argument("events", help="canonical JSON events, one per line ('-' for standard input)")
    fold.add_argument("--rejects", help="where rejected lines go (default: EVENTS.rejects.jsonl)")
    fold.set_defaults(func=cmd_fold)
    gen = sub.add_parser("generate", help="print a generated population of careers as JSON lines")
    gen.add_argument("--workers", type=int, default=100)
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--months", type=int, default=36, help="length of each career in months")
    gen.add_argument("--clean", action="store_true", help="no duplicates, corrections, retractions or bad lines")
    gen.set_defaults(func=cmd_generate)

    def broker_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--broker", default=os.environ.get("WORKERFILE_BROKER", "127.0.0.1:9092"),
                       help="Kafka bootstrap servers (env WORKERFILE_BROKER)")
        p.add_argument("--partitions", type=int, default=None,
                       help="partitions of every topic (default: deploy/topics.toml, env WORKERFILE_PARTITIONS)")

    topics = sub.add_parser("topics", help="create/verify the topics of deploy/topics.toml")
    broker_options(topics)
    topics.add_argument("--profile", default="local", choices=("local", "cluster"))
    topics.set_defaults(func=cmd_topics)
    worker = sub.add_parser("worker", help="run the stream processors (faust worker)")
    broker_options(worker)
    worker.add_argument("--app-id", default=None, help="faust application id (env WORKERFILE_APP_ID)")
    worker.add_argument("--data-dir", default=None, help="RocksDB directory (env WORKERFILE_DATA_DIR)")
    worker.add_argument("--web-port", type=int, default=None,
                        help="serve the HTTP API on 127.0.0.1:PORT (env WORKERFILE_WEB_PORT; 0 = off)")
    worker.add_argument("--loglevel", default="warning")
    worker.set_defaults(func=cmd_worker)
    subscribe = sub.add_parser("subscribe", help="follow subsidy grants or file changes; print or forward them")
    subscribe.add_argument("what", choices=("services", "changes"))
    subscribe.add_argument("--broker", default=os.environ.get("WORKERFILE_BROKER", "127.0.0.1:9092"))
    subscribe.add_argument("--group", default="workerfile-subscriber", help="consumer group (one per subscribing system)")
    subscribe.add_argument("--forward", metavar="URL", help="POST each message as JSON to URL instead of printing it")
    subscribe.add_argument("--json", action="store_true", help="print whole messages as JSON lines (full SSN)")
    subscribe.add_argument("--state", metavar="FILE", help="remember handed-on ids here (no repeats across restarts)")
    subscribe.add_argument("--once", action="store_true", help="stop when caught up")
    subscribe.set_defaults(func=cmd_subscribe)
    demo = sub.add_parser("demo", help="run the whole pipeline locally on a generated population")
    demo.add_argument("--workers", type=int, default=200, help="size of the generated population")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--data-dir", default=None, help="where Kafka and the worker keep data (default: a temp dir)")
    demo.add_argument("--keep", action="store_true", help="leave the broker and the worker running at the end")
    demo.set_defaults(func=cmd_demo)
    emit = sub.add_parser("emit", help="validate a CSV or JSONL file of events, then send it (docs/csv-layouts.md)")
    emit.add_argument("file", help="canonical JSON lines, or CSV with the layout of docs/csv-layouts.md")
    emit.add_argument("--broker", default=os.environ.get("WORKERFILE_BROKER", "127.0.0.1:9092"),
                      help="Kafka bootstrap servers (env WORKERFILE_BROKER)")
    emit.add_argument("--type", help="the event type of every row, e.g. training.completed (else a type column)")
    emit.add_argument("--source", help="the emitting organisation's credit code, for rows without a source")
    emit.add_argument("--encoding", default="auto", choices=("auto", "utf-8", "gbk", "gb18030"))
    emit.add_argument("--format", default="auto", choices=("auto", "csv", "jsonl"),
                      help="default: by extension (.csv/.tsv/.txt, .jsonl/.ndjson/.json), else by content")
    emit.add_argument("--partial", action="store_true", help="send the valid rows even if some rows are invalid")
    emit.add_argument("--dry-run", action="store_true",
                      help="validate only; print the events that would be sent as JSON lines")
    emit.set_defaults(func=cmd_emit)
    sink = sub.add_parser("sink", help="materialise worker-files into a SQLite or PostgreSQL table")
    sink.add_argument("database", choices=("sqlite", "postgres"))
    sink.add_argument("--broker", default=os.environ.get("WORKERFILE_BROKER", "127.0.0.1:9092"),
                      help="Kafka bootstrap servers (env WORKERFILE_BROKER)")
    sink.add_argument("--db", default=None,
                      help="sqlite: the database file (default worker_files.sqlite3); postgres: a libpq connection "
                           "string or URI (default: the PG* environment variables); env WORKERFILE_SINK_DB")
    sink.add_argument("--group", default="workerfile-sink",
                      help="name under which the sink's offsets are stored in the database")
    sink.add_argument("--once", action="store_true", help="read up to the current end of the topic, then exit")
    sink.add_argument("--batch-size", type=int, default=500, help="most records per database transaction")
    sink.set_defaults(func=cmd_sink)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
