"""The `workerfile` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import orjson

from workerfile import logmask


class _NoPasswordOption(argparse.Action):
    """--kafka-password is refused (without echoing it), rather than being taken as an
    abbreviation of --kafka-password-file."""

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error("--kafka-password is not accepted (a password on the command line is visible to every "
                     "user of this machine): put it in a file and use --kafka-password-file FILE")


def kafka_options(p: argparse.ArgumentParser) -> None:
    """The login on a secured broker (streams/kafka_security.py); the WORKERFILE_KAFKA_*
    variables work too. No password option: the password is only read from a file."""
    p.add_argument("--kafka-password", action=_NoPasswordOption, help=argparse.SUPPRESS)
    p.add_argument("--kafka-user", default=None, metavar="USER", help="SASL user (env WORKERFILE_KAFKA_USER)")
    p.add_argument("--kafka-password-file", default=None, metavar="FILE",
                   help="file holding the user's password (env WORKERFILE_KAFKA_PASSWORD_FILE)")
    p.add_argument("--kafka-config", default=None, metavar="FILE",
                   help="Java client properties with the login, as deploy/security/acls.py --secrets writes "
                        "(env WORKERFILE_KAFKA_CONFIG)")


def broker_options(p: argparse.ArgumentParser, partitions: bool = False) -> None:
    """--broker (env WORKERFILE_BROKER) and the login options of every command that talks
    to Kafka; `partitions`: also --partitions (env WORKERFILE_PARTITIONS)."""
    p.add_argument("--broker", default=os.environ.get("WORKERFILE_BROKER", "127.0.0.1:9092"),
                   help="Kafka bootstrap servers (env WORKERFILE_BROKER)")
    if partitions:
        p.add_argument("--partitions", type=int, default=None,
                       help="partitions of every topic (default: deploy/topics.toml, env WORKERFILE_PARTITIONS)")
    kafka_options(p)


def kafka_security(args: argparse.Namespace, command: str):
    """The KafkaSecurity of the options and the environment, or None after printing why not."""
    from streams.kafka_security import KafkaSecurity, KafkaSecurityError

    try:
        return KafkaSecurity.from_env(user=getattr(args, "kafka_user", None),
                                      password_file=getattr(args, "kafka_password_file", None),
                                      config=getattr(args, "kafka_config", None))
    except KafkaSecurityError as err:
        print(f"workerfile {command}: {err}", file=sys.stderr)
        return None


def wire_ready(command: str, writes: bool = False) -> bool:
    """Checks this process's wire format (WORKERFILE_WIRE_FORMAT, WORKERFILE_SCHEMA_REGISTRY_URL;
    streams/codec.py); a command that writes also looks up the schema ids of the Confluent
    wire format now. False after printing why not."""
    from streams import codec

    try:
        codec.prepare() if writes else codec.wire()
    except codec.CodecError as err:
        print(f"workerfile {command}: {err}", file=sys.stderr)
        return False
    return True


def broker_login(args: argparse.Namespace, command: str, writes: bool = False):
    """What a command that talks to the brokers checks first: its Kafka login
    (`kafka_security`) and the wire format (`wire_ready`). The KafkaSecurity, or None
    after printing why not (the command then exits with status 2)."""
    security = kafka_security(args, command)
    if security is None or not wire_ready(command, writes=writes):
        return None
    return security


def _login_hint(security, err: BaseException | None = None) -> str:
    """Who the command was logged in as, for its error message (nothing on PLAINTEXT)."""
    if not security.sasl:
        return ""
    if "Timeout" in type(err).__name__:
        return f" (logged in {security.describe()}; a wrong user or password shows as this timeout)"
    if "Authorization" in type(err).__name__:
        return f" (logged in {security.describe()}; its rights: deploy/security/parties.toml)"
    return f" (logged in {security.describe()})"


def cmd_fold(args: argparse.Namespace) -> int:
    """Fold a file of canonical JSON events with no broker; print one file per line."""
    from processors.batch import fold_lines
    from processors.organisations import DEVELOPMENT_MODE, OrganisationsError, load_organisations

    from processors.services import ServiceRulesError, load_service_rules

    try:
        organisations = load_organisations(args.organisations)
        rules = load_service_rules(args.services)
    except (OrganisationsError, ServiceRulesError) as err:
        print(f"workerfile fold: {err}", file=sys.stderr)
        return 2
    if organisations is None:
        print(f"workerfile fold: {DEVELOPMENT_MODE}; give the registry with --organisations FILE", file=sys.stderr)
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
        batch = fold_lines(source, file=name, organisations=organisations, rules=rules)
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
    """Write a generated population of careers as JSON lines (bad lines included unless --clean),
    and with --organisations-out the organisation registry that fits it."""
    from processors.organisations import registry_toml
    from workerfile.population import generate_population, population_registry

    if args.organisations_out:
        try:
            Path(args.organisations_out).write_text(registry_toml(population_registry(args.seed)), encoding="utf-8")
        except OSError as err:
            print(f"workerfile generate: cannot write {args.organisations_out}: {err}", file=sys.stderr)
            return 1
    out = sys.stdout.buffer
    for event in generate_population(args.workers, seed=args.seed, months=args.months, anomalies=not args.clean):
        out.write((event.encode() if isinstance(event, str) else orjson.dumps(event)) + b"\n")
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    """Create missing topics and verify existing ones: those of deploy/topics.toml and the
    changelog topics of the tables of the application id; with a schema registry, register
    and verify every topic's value schema too (subject <topic>-value, BACKWARD)."""
    from kafka.errors import KafkaError

    from streams import codec

    from streams.topics import ensure_topics, load_topic_specs

    security = kafka_security(args, "topics")
    if security is None:
        return 2
    specs = load_topic_specs(args.profile, partitions=args.partitions, app_id=args.app_id)
    try:
        for line in ensure_topics(args.broker, specs, security):
            print(line)
    except RuntimeError as err:
        print(f"workerfile topics: {err}", file=sys.stderr)
        return 1
    except KafkaError as err:  # not allowed (topics need the admin login), unreachable, login refused
        print(f"workerfile topics: {type(err).__name__}: {err}{_login_hint(security, err)}", file=sys.stderr)
        return 1
    if args.schema_registry:
        from streams.schema_registry import RegistryClient, RegistryError, register_value_schemas

        try:
            for line in register_value_schemas(RegistryClient(args.schema_registry)):
                print(line)
        except RegistryError as err:
            print(f"workerfile topics: schema registry: {err}", file=sys.stderr)
            return 1
    elif os.environ.get(codec.WIRE_FORMAT_ENV) == codec.CONFLUENT:
        print(f"workerfile topics: {codec.WIRE_FORMAT_ENV}=confluent, but no schema registry to register the "
              f"schemas in: set {codec.REGISTRY_URL_ENV} or --schema-registry URL", file=sys.stderr)
        return 2
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Run the stream processors (a faust worker) until stopped."""
    import faust

    from processors.organisations import OrganisationsError
    from processors.services import ServiceRulesError
    from streams.app import create_app
    from streams.settings import StreamSettings

    security = broker_login(args, "worker", writes=True)
    if security is None:
        return 2
    settings = StreamSettings.from_env(broker=args.broker, app_id=args.app_id, data_dir=args.data_dir,
                                       partitions=args.partitions, web_port=args.web_port, kafka=security)
    problem = topics_not_ready(settings)
    if problem:
        print(f"workerfile worker: {problem}", file=sys.stderr)
        return 2
    try:
        app = create_app(settings)
    except (OrganisationsError, ServiceRulesError) as err:  # WORKERFILE_ORGANISATIONS / _SERVICES not valid
        print(f"workerfile worker: {err}", file=sys.stderr)
        return 2
    worker = faust.Worker(app, loglevel=args.loglevel, quiet=True)
    worker.spinner = None  # its handler sets the root logger to DEBUG: every library log record is built for nothing
    worker.execute_from_commandline()
    return 0


def topics_not_ready(settings) -> str | None:
    """None once every topic the worker uses and every changelog of its tables exists with
    the worker's partitions (waiting up to settings.topics_wait s for missing ones); else
    why not, with the command that creates them. Before faust starts: a changelog that
    faust created itself while the first worker of an application id joined its group
    could be missing from the group's metadata, and its table then failed every write."""
    from kafka.errors import KafkaError

    from streams.topics import TopicsNotReady, load_topic_specs, wait_for_topics

    specs = load_topic_specs(partitions=settings.partitions, app_id=settings.app_id)
    command = (f"workerfile topics --broker {settings.broker} --app-id {settings.app_id} "
               f"--partitions {settings.partitions}")
    if settings.kafka.sasl:
        command += " (logged in as the admin user)"

    def waiting(missing: list[str]) -> None:
        print(f"workerfile worker: waiting up to {settings.topics_wait:.0f} s for {len(missing)} missing topic(s): "
              f"{', '.join(missing)} (`{command}` creates them)", file=sys.stderr, flush=True)

    try:
        wait_for_topics(settings.broker, specs, settings.kafka, timeout=settings.topics_wait, on_wait=waiting)
    except TopicsNotReady as err:
        if err.missing and len(err.missing) == len(err.problems):
            return (f"topics missing after {settings.topics_wait:.0f} s: {', '.join(err.missing)}. "
                    f"Create them with `{command}`, then start the worker again")
        return (f"the topics do not fit this worker: {'; '.join(err.problems)}. The worker's partitions "
                f"(--partitions, WORKERFILE_PARTITIONS: {settings.partitions}) must be those of every topic"
                + (f"; the missing ones are created by `{command}`" if err.missing else ""))
    except KafkaError as err:  # unreachable, login refused
        return f"cannot check the topics on {settings.broker}: {type(err).__name__}: {err}{_login_hint(settings.kafka, err)}"
    return None


def cmd_demo(args: argparse.Namespace) -> int:
    """Local Kafka, topics, a worker, a published population, and one worker's file."""
    from workerfile.demo import run_demo

    if not wire_ready("demo"):
        return 2
    return run_demo(workers=args.workers, seed=args.seed, keep=args.keep, data_dir=args.data_dir)


def cmd_emit(args: argparse.Namespace) -> int:
    """Validate a CSV or JSONL file of events as a whole, then send it (docs/csv-layouts.md)."""
    from streams.emit import run

    security = broker_login(args, "emit", writes=not args.dry_run)
    if security is None:
        return 2
    return run(args.file, broker=args.broker, event_type=args.type, source=args.source, encoding=args.encoding,
               format=args.format, partial=args.partial, dry_run=args.dry_run, out=sys.stdout.buffer, err=sys.stderr,
               security=security, timeout=args.timeout)


def cmd_connect(args: argparse.Namespace) -> int:
    """Kafka Connect into PostgreSQL (deploy/connect/): register the row schemas in Apicurio
    Registry, or create/update the sink connector of a distributed Connect cluster."""
    from sinks.connect import SINK_JSON, ConnectError, ConnectRest, register_row_schemas

    try:
        if args.action == "register":
            if not args.registry:
                print("workerfile connect register: give the registry with --registry URL "
                      "(or WORKERFILE_CONNECT_REGISTRY_URL)", file=sys.stderr)
                return 2
            for line in register_row_schemas(args.registry):
                print(line)
            return 0
        rest = ConnectRest(args.connect)
        config = json.loads(SINK_JSON.read_text(encoding="utf-8"))
        answer = rest.put_config(config, config["name"])
        print(f"connector {answer.get('name', config['name'])}: config put on {rest.url}")
        status = rest.wait_running(config["name"], timeout=args.timeout)
        print(f"connector {config['name']}: {status['connector']['state']}, "
              f"{len(status['tasks'])} task(s) {', '.join(t['state'] for t in status['tasks'])}")
        return 0
    except ConnectError as err:
        print(f"workerfile connect {args.action}: {err}", file=sys.stderr)
        return 1


def cmd_sink(args: argparse.Namespace) -> int:
    """Materialise the compacted `worker-files` topic into a SQLite or PostgreSQL table (sinks/)."""
    from sinks.base import open_store
    from sinks.runner import SinkError, run_sink

    security = broker_login(args, "sink")
    if security is None:
        return 2
    db = args.db if args.db is not None else os.environ.get("WORKERFILE_SINK_DB")
    try:
        store = open_store(args.database, db)
    except Exception as err:  # a path that cannot be opened, a server that refuses, psycopg missing
        print(f"workerfile sink: cannot open the {args.database} database: {err}", file=sys.stderr)
        return 1
    with store:
        try:
            stats = run_sink(store, args.broker, group=args.group, once=args.once, batch_size=args.batch_size,
                             security=security)
        except SinkError as err:
            print(f"workerfile sink: stopped: {err}", file=sys.stderr)
            return 2
        except Exception as err:  # the broker unreachable, the database gone
            print(f"workerfile sink: failed: {type(err).__name__}: {err}{_login_hint(security, err)}", file=sys.stderr)
            return 1
        print(f"workerfile sink: {stats.summary()}; {store.count()} files in worker_files", file=sys.stderr)
    return 0


def cmd_subscribe(args: argparse.Namespace) -> int:
    """Follow worker-services or worker-file-changes; print or forward each message."""
    from streams.subscribe import http_forwarder, printer, subscribe

    from kafka.errors import KafkaError

    security = broker_login(args, "subscribe")
    if security is None:
        return 2
    handle = http_forwarder(args.forward) if args.forward else printer(args.what, args.json)
    try:
        count = subscribe(args.broker, args.what, handle, group=args.group, once=args.once, state=args.state,
                          security=security, rejects=args.rejects)
    except KeyboardInterrupt:
        return 0
    except KafkaError as err:  # e.g. GroupAuthorizationFailedError: a group outside the party's prefix
        print(f"workerfile subscribe: {type(err).__name__}: {err}{_login_hint(security, err)}", file=sys.stderr)
        return 1
    print(f"workerfile subscribe: {count.summary()}", file=sys.stderr)
    return 0


# --- workerfile stats: workforce statistics from worker-files (docs/statistics.md) -------------

def _stats_db(args: argparse.Namespace) -> str | None:
    return args.db if args.db is not None else os.environ.get("WORKERFILE_STATS_DB")


def _stats_open(args: argparse.Namespace, command: str):
    """The stats store of --database/--db, or None after printing why not."""
    from sinks.stats import open_stats_store

    try:
        return open_stats_store(args.database, _stats_db(args))
    except Exception as err:  # a path that cannot be opened, a server that refuses
        print(f"workerfile stats {command}: cannot open the {args.database} database: {err}", file=sys.stderr)
        return None


def _stats_print(figures: dict, as_json: bool) -> None:
    from workerfile.stats_table import render

    if as_json:
        sys.stdout.buffer.write(orjson.dumps(figures, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        sys.stdout.write(render(figures))
    sys.stdout.flush()


def cmd_stats_show(args: argparse.Namespace) -> int:
    """Print the live figures of the stats store as tables (or JSON: the body of GET /stats)."""
    store = _stats_open(args, "show")
    if store is None:
        return 1
    with store:
        figures = store.stats_json(min_cell=args.min_cell, group=args.group)
    _stats_print(figures, args.json)
    return 0


def cmd_stats_follow(args: argparse.Namespace) -> int:
    """Keep the stats store up to date from worker-files (offsets stored with the totals)."""
    from sinks.runner import SinkError
    from sinks.stats import StatsStoreOutdated, follow

    security = broker_login(args, "stats follow")
    if security is None:
        return 2
    store = _stats_open(args, "follow")
    if store is None:
        return 1
    with store:
        try:
            result = follow(store, args.broker, group=args.group, once=args.once, batch_size=args.batch_size,
                            security=security)
        except SinkError as err:
            print(f"workerfile stats follow: stopped: {err}", file=sys.stderr)
            return 2
        except StatsStoreOutdated as err:
            print(f"workerfile stats follow: {err}", file=sys.stderr)
            return 1
        except Exception as err:  # the broker unreachable, the database gone
            print(f"workerfile stats follow: failed: {type(err).__name__}: {err}{_login_hint(security, err)}",
                  file=sys.stderr)
            return 1
        workers = store.totals().get(("workers",), 0)
        print(f"workerfile stats follow: {result.summary()}; {workers} workers in the totals", file=sys.stderr)
    return 0


def cmd_stats_serve(args: argparse.Namespace) -> int:
    """Serve GET /stats and the dashboard (optionally following worker-files in the same process)."""
    import signal
    import threading

    from processors import stats as st
    from sinks.stats import StatsStoreOutdated, open_stats_store
    from sinks.stats_web import Follower, make_server, serve_in_thread

    security = broker_login(args, "stats serve") if args.follow else None
    if args.follow and security is None:
        return 2
    store = _stats_open(args, "serve")
    if store is None:
        return 1
    if args.follow and store.definitions != st.DEFINITIONS:
        try:
            store.check_definitions()
        except StatsStoreOutdated as err:
            print(f"workerfile stats serve --follow: {err}", file=sys.stderr)
            store.close()
            return 1
    try:
        server = make_server(store, args.host, args.port, min_cell=args.min_cell, group=args.group)
    except OSError as err:
        print(f"workerfile stats serve: cannot listen on {args.host}:{args.port}: {err}", file=sys.stderr)
        store.close()
        return 1
    follower = None
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        if args.follow:
            follower = Follower(lambda: open_stats_store(args.database, _stats_db(args)), args.broker,
                                group=args.group, security=security).start()
        serve_in_thread(server)
        print(f"workerfile stats serve: dashboard at {server.url}/dashboard, figures at {server.url}/stats"
              + (f", following worker-files on {args.broker}" if follower else ""), file=sys.stderr, flush=True)
        while not stop.wait(1.0):
            if follower is not None and follower.error is not None:
                print(f"workerfile stats serve: the consumer stopped: {follower.error}", file=sys.stderr)
                return 2
        return 0
    finally:
        server.shutdown()
        server.server_close()
        if follower is not None:
            follower.stop()
        store.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def cmd_stats_recount(args: argparse.Namespace) -> int:
    """The figures recounted from scratch: from a JSONL of files (`workerfile fold` output) or
    from the latest files on worker-files (--broker); the reference the live totals must equal."""
    from processors import stats as st

    if args.files:
        source = sys.stdin.buffer if args.files == "-" else None
        if source is None and not Path(args.files).is_file():
            print(f"workerfile stats recount: no such file: {args.files}", file=sys.stderr)
            return 1
        with (source or Path(args.files).open("rb")) as fh:
            files = [orjson.loads(line) for line in fh if line.strip()]
    else:
        from streams.reader import latest_files

        security = broker_login(args, "stats recount")
        if security is None:
            return 2
        files = list(latest_files(args.broker, security=security).values())
    figures = {"meta": {"topic": "worker-files", "recount": True, "min_cell": args.min_cell},
               **st.figures(st.recount(files), min_cell=args.min_cell)}
    _stats_print(figures, args.json)
    return 0


def _min_cell(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def stats_parser(sub) -> None:
    """The `workerfile stats` group: show (the default), follow, serve, recount."""
    default_min_cell = os.environ.get("WORKERFILE_STATS_MIN_CELL", "10")

    def store_options(p: argparse.ArgumentParser, top: bool = False) -> None:
        # the defaults live on `stats` itself, so that `stats --db X show` and `stats show --db X` agree
        keep = argparse.SUPPRESS
        p.add_argument("--database", default="sqlite" if top else keep, choices=("sqlite", "postgres"))
        p.add_argument("--db", default=None if top else keep,
                       help="sqlite: the database file (default workerfile_stats.sqlite3); "
                            "postgres: a libpq connection string; env WORKERFILE_STATS_DB")
        p.add_argument("--group", default="workerfile-stats" if top else keep,
                       help="name of the consumer's offsets in the database (default workerfile-stats)")

    def figure_options(p: argparse.ArgumentParser, top: bool = False) -> None:
        p.add_argument("--min-cell", type=_min_cell, default=_min_cell(default_min_cell) if top else argparse.SUPPRESS,
                       help="no wage figure for a cell with fewer workers (default 10; env WORKERFILE_STATS_MIN_CELL)")


    stats = sub.add_parser("stats", help="workforce statistics from worker-files: table, consumer, dashboard")
    store_options(stats, top=True)
    figure_options(stats, top=True)
    stats.add_argument("--json", action="store_true", help="print the figures as JSON (the body of GET /stats)")
    stats.set_defaults(func=cmd_stats_show)
    actions = stats.add_subparsers(dest="stats_command")
    show = actions.add_parser("show", help="print the live figures as tables (the default)")
    store_options(show)
    figure_options(show)
    show.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                      help="print the figures as JSON (the body of GET /stats)")
    show.set_defaults(func=cmd_stats_show)
    follow = actions.add_parser("follow", help="keep the statistics up to date from worker-files")
    store_options(follow)
    broker_options(follow)
    follow.add_argument("--once", action="store_true", help="read up to the current end of the topic, then exit")
    follow.add_argument("--batch-size", type=int, default=500, help="most records per database transaction")
    follow.set_defaults(func=cmd_stats_follow)
    serve = actions.add_parser("serve", help="serve GET /stats and the dashboard page")
    store_options(serve)
    figure_options(serve)
    broker_options(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--follow", action="store_true", help="also follow worker-files in this process")
    serve.set_defaults(func=cmd_stats_serve)
    recount = actions.add_parser("recount", help="the figures recounted from scratch (a files JSONL, or --broker)")
    recount.add_argument("files", nargs="?", help="JSON lines of worker files, e.g. `workerfile fold` output ('-': stdin)")
    figure_options(recount)
    broker_options(recount)
    recount.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    recount.set_defaults(func=cmd_stats_recount)


def cmd_token_add(args: argparse.Namespace) -> int:
    """Add an API caller; print its token once (only its SHA-256 is kept)."""
    from streams.access import AccessConfigError, add_caller, load_views

    try:
        token = add_caller(args.file, load_views(args.views), args.name, args.audience, org=args.org, ssn=args.ssn)
    except AccessConfigError as err:
        print(f"workerfile token add: {err}", file=sys.stderr)
        return 2
    print(token)
    print(f"workerfile token add: {args.name} ({args.audience}) added to {args.file}; the token above is "
          "shown once and stored nowhere", file=sys.stderr)
    return 0


def cmd_token_key(args: argparse.Namespace) -> int:
    """Write a new random pseudonym key file (never overwrites one)."""
    from streams.access import AccessConfigError, write_pseudonym_key

    try:
        write_pseudonym_key(args.file)
    except AccessConfigError as err:
        print(f"workerfile token key: {err}", file=sys.stderr)
        return 2
    print(f"workerfile token key: wrote a new pseudonym key to {args.file} (mode 600); keep it secret, "
          "back it up, and give every stream worker the same one (WORKERFILE_PSEUDONYM_KEY_FILE)", file=sys.stderr)
    return 0


def cmd_admin(args: argparse.Namespace) -> int:
    """Send an operator command (merge two files, erase a file) to the stream processors."""
    from schemas.identity import IdentityError, mask_ssn
    from streams.admin import AdminError, send_command

    security = broker_login(args, "admin", writes=True)
    if security is None:
        return 2
    try:
        command = send_command(args.broker, args.action, args.ssn, getattr(args, "into", None),
                               operator=args.operator, reason=args.reason, security=security)
    except (AdminError, IdentityError) as err:
        print(f"workerfile admin {args.action}: {getattr(err, 'message', err)}", file=sys.stderr)
        return 2
    except Exception as err:  # the broker did not take it
        print(f"workerfile admin {args.action}: not sent: {type(err).__name__}: {err}{_login_hint(security, err)}",
              file=sys.stderr)
        return 1
    target = f" into {mask_ssn(command['other_ssn'])}" if command["other_ssn"] else ""
    print(f"workerfile admin: {args.action} of {mask_ssn(command['ssn'])}{target} sent as command "
          f"{command['command_id']}; the stream processors carry it out in order with the worker's events "
          "and record it in the worker's access log", file=sys.stderr)
    return 0


def admin_parser(sub) -> None:
    admin = sub.add_parser("admin", help="operator actions on files, audited: merge two numbers, erase a file")
    actions = admin.add_subparsers(dest="action", required=True)
    merge = actions.add_parser("merge", help="merge the file of SSN into the file of INTO (one person, two numbers)")
    merge.add_argument("ssn", help="the number whose file is merged away (it becomes an alias)")
    merge.add_argument("into", help="the number that keeps the file")
    erase = actions.add_parser("erase", help="remove a file: tombstones on every record topic, rows deleted by sinks")
    erase.add_argument("ssn")
    for p in (merge, erase):
        p.add_argument("--reason", required=True, help="why (kept in the worker's access log)")
        p.add_argument("--operator", default=os.environ.get("USER") or None,
                       help="who does it (kept in the worker's access log; default $USER)")
        broker_options(p)
        p.set_defaults(func=cmd_admin)


def token_parser(sub) -> None:
    token = sub.add_parser("token", help="API callers and the pseudonym key (deploy/views.toml, README Security)")
    actions = token.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="add a caller to the callers file and print its new token once")
    add.add_argument("--file", default=os.environ.get("WORKERFILE_API_TOKENS", "api-callers.toml"),
                     help="the callers file (env WORKERFILE_API_TOKENS)")
    add.add_argument("--name", required=True, help="who the caller is, as the worker's access log shows it")
    add.add_argument("--audience", required=True, help="a view of deploy/views.toml, e.g. social_insurance")
    add.add_argument("--org", help="the caller's unified social credit code (the `source` it may send)")
    add.add_argument("--ssn", help="the worker audience: the one SSN this caller may read")
    add.add_argument("--views", default=os.environ.get("WORKERFILE_VIEWS") or None,
                     help="the views config (env WORKERFILE_VIEWS; default deploy/views.toml)")
    add.set_defaults(func=cmd_token_add)
    key = actions.add_parser("key", help="write a new random pseudonym key file")
    key.add_argument("file")
    key.set_defaults(func=cmd_token_key)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workerfile", description="One electronic file per industrial worker.")
    sub = parser.add_subparsers(dest="command", required=True)
    fold = sub.add_parser("fold", help="fold a JSONL file of events offline, print the files as JSON lines")
    fold.add_argument("events", help="canonical JSON events, one per line ('-' for standard input)")
    fold.add_argument("--rejects", help="where rejected lines go (default: EVENTS.rejects.jsonl)")
    fold.add_argument("--organisations", metavar="FILE", default=None,
                      help="the organisation registry (TOML): an event whose source lacks the role for it is "
                           "rejected unauthorized_source; without it sources are not checked (development mode)")
    fold.add_argument("--services", metavar="FILE", default=None,
                      help="the subsidy's parameters (default: deploy/services.toml, else the contract's defaults)")
    fold.set_defaults(func=cmd_fold)
    gen = sub.add_parser("generate", help="print a generated population of careers as JSON lines")
    gen.add_argument("--workers", type=int, default=100)
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--months", type=int, default=36, help="length of each career in months")
    gen.add_argument("--clean", action="store_true", help="no duplicates, corrections, retractions or bad lines")
    gen.add_argument("--organisations-out", metavar="FILE", default=None,
                     help="also write the organisation registry (TOML) of the population's sources to FILE")
    gen.set_defaults(func=cmd_generate)

    topics = sub.add_parser("topics", help="create/verify the topics of deploy/topics.toml and the changelog "
                                           "topics of the application id's tables")
    broker_options(topics, partitions=True)
    topics.add_argument("--profile", default="local", choices=("local", "cluster"))
    topics.add_argument("--app-id", default=os.environ.get("WORKERFILE_APP_ID", "workerfile"),
                        help="the stream processors' application id whose changelog topics to create "
                             "(default workerfile, env WORKERFILE_APP_ID)")
    topics.add_argument("--schema-registry", default=os.environ.get("WORKERFILE_SCHEMA_REGISTRY_URL") or None,
                        metavar="URL", help="also register and verify each topic's value schema (subject "
                                            "<topic>-value, BACKWARD) in this Confluent-compatible registry, "
                                            "e.g. http://127.0.0.1:8081/apis/ccompat/v7 (env "
                                            "WORKERFILE_SCHEMA_REGISTRY_URL)")
    topics.set_defaults(func=cmd_topics)
    worker = sub.add_parser("worker", help="run the stream processors (faust worker)")
    broker_options(worker, partitions=True)
    worker.add_argument("--app-id", default=None, help="faust application id (env WORKERFILE_APP_ID)")
    worker.add_argument("--data-dir", default=None, help="RocksDB directory (env WORKERFILE_DATA_DIR)")
    worker.add_argument("--web-port", type=int, default=None,
                        help="serve the HTTP API on 127.0.0.1:PORT (env WORKERFILE_WEB_PORT; 0 = off)")
    worker.add_argument("--loglevel", default="warning")
    worker.set_defaults(func=cmd_worker)
    subscribe = sub.add_parser("subscribe", help="follow subsidy grants or file changes; print or forward them")
    subscribe.add_argument("what", choices=("services", "changes"))
    broker_options(subscribe)
    subscribe.add_argument("--group", default="workerfile-subscriber", help="consumer group (one per subscribing system)")
    subscribe.add_argument("--forward", metavar="URL", help="POST each message as JSON to URL instead of printing it")
    subscribe.add_argument("--json", action="store_true", help="print whole messages as JSON lines (full SSN)")
    subscribe.add_argument("--state", metavar="FILE", help="remember handed-on ids here (no repeats across restarts)")
    subscribe.add_argument("--once", action="store_true", help="stop when caught up")
    subscribe.add_argument("--rejects", metavar="FILE", help="append records that cannot be handed on here "
                           "(default workerfile-subscribe-<what>.rejects.jsonl)")
    subscribe.set_defaults(func=cmd_subscribe)
    demo = sub.add_parser("demo", help="run the whole pipeline locally on a generated population")
    demo.add_argument("--workers", type=int, default=200, help="size of the generated population")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--data-dir", default=None, help="where Kafka and the worker keep data (default: a temp dir)")
    demo.add_argument("--keep", action="store_true", help="leave the broker and the worker running at the end")
    demo.set_defaults(func=cmd_demo)
    emit = sub.add_parser("emit", help="validate a CSV or JSONL file of events, then send it (docs/csv-layouts.md)")
    emit.add_argument("file", help="canonical JSON lines, or CSV with the layout of docs/csv-layouts.md")
    broker_options(emit)
    emit.add_argument("--type", help="the event type of every row, e.g. training.completed (else a type column)")
    emit.add_argument("--source", help="the emitting organisation's credit code, for rows without a source")
    emit.add_argument("--encoding", default="auto", choices=("auto", "utf-8", "gbk", "gb18030"))
    emit.add_argument("--format", default="auto", choices=("auto", "csv", "jsonl"),
                      help="default: by extension (.csv/.tsv/.txt, .jsonl/.ndjson/.json), else by content")
    emit.add_argument("--partial", action="store_true", help="send the valid rows even if some rows are invalid")
    emit.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                      help="wait this long for the brokers to acknowledge every event (acks=all), then stop with "
                           "exit status 3 naming what was not confirmed (default 60)")
    emit.add_argument("--dry-run", action="store_true",
                      help="validate only; print the events that would be sent as JSON lines")
    emit.set_defaults(func=cmd_emit)
    sink = sub.add_parser("sink", help="materialise worker-files into a SQLite or PostgreSQL table")
    sink.add_argument("database", choices=("sqlite", "postgres"))
    broker_options(sink)
    sink.add_argument("--db", default=None,
                      help="sqlite: the database file (default worker_files.sqlite3); postgres: a libpq connection "
                           "string or URI (default: the PG* environment variables); env WORKERFILE_SINK_DB")
    sink.add_argument("--group", default="workerfile-sink",
                      help="name under which the sink's offsets are stored in the database")
    sink.add_argument("--once", action="store_true", help="read up to the current end of the topic, then exit")
    sink.add_argument("--batch-size", type=int, default=500, help="most records per database transaction")
    sink.set_defaults(func=cmd_sink)
    connect = sub.add_parser("connect", help="Kafka Connect into PostgreSQL (deploy/connect/): register the "
                                              "row schemas, or deploy the sink connector on a Connect cluster")
    connect.add_argument("action", choices=("register", "deploy"),
                         help="register: every WorkerFileRow schema into Apicurio Registry (what the connector's "
                              "AvroConverter reads); deploy: PUT deploy/connect/worker-file-rows-sink.json on a "
                              "distributed Connect cluster and wait until it runs")
    connect.add_argument("--registry", default=os.environ.get("WORKERFILE_CONNECT_REGISTRY_URL") or None,
                         help="Apicurio Registry: its root http://HOST:PORT or its API .../apis/registry/v2 "
                              "(env WORKERFILE_CONNECT_REGISTRY_URL)")
    connect.add_argument("--connect", default=os.environ.get("WORKERFILE_CONNECT_URL", "http://127.0.0.1:8083"),
                         help="Connect's REST API (env WORKERFILE_CONNECT_URL, default http://127.0.0.1:8083)")
    connect.add_argument("--timeout", type=float, default=120.0, help="deploy: seconds to wait until it runs")
    connect.set_defaults(func=cmd_connect)
    stats_parser(sub)
    token_parser(sub)
    admin_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logmask.install()  # no log record of any command shows a whole SSN
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
