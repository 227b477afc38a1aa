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
                                       partitions=args.partitions)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=args.loglevel, quiet=True)
    worker.execute_from_commandline()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Local Kafka, topics, a worker, a published population, and one worker's file."""
    from workerfile.demo import run_demo

    return run_demo(workers=args.workers, seed=args.seed, keep=args.keep, data_dir=args.data_dir)


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
    worker.add_argument("--loglevel", default="warning")
    worker.set_defaults(func=cmd_worker)
    demo = sub.add_parser("demo", help="run the whole pipeline locally on a generated population")
    demo.add_argument("--workers", type=int, default=200, help="size of the generated population")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--data-dir", default=None, help="where Kafka and the worker keep data (default: a temp dir)")
    demo.add_argument("--keep", action="store_true", help="leave the broker and the worker running at the end")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
