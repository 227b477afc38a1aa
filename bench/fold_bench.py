"""Benchmark of the offline fold (`workerfile fold`) against parsing baselines, in one run.

Generates N careers of about 100 events each (JSON lines, with the usual anomalies),
then measures, best of R rounds each (the rounds interleaved: each round runs every step
once, so that a busy spell of a shared machine does not fall on one step only):
  - parse only, stdlib json: json.loads of every line;
  - parse only, orjson: orjson.loads of every line (the parser of the reference path);
  - parse + validate, reference: processors.intake.parse_json_line (orjson, then the
    pydantic models with their Python hooks: what the stream does with its decoded dicts);
  - parse + validate, fast path: processors.intake.fast_json_line (the line's bytes
    validated in pydantic-core; what the fold uses, falling back to the reference);
  - fold: processors.batch.fold_lines (parse, validate, fold) plus deriving every file.
Also the compactness of a 40-year career's state. Not a test: figures go to README.md.

    python bench/fold_bench.py [--workers 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from processors.batch import fold_lines  # noqa: E402
from processors.fold import new_state, fold_event, state_to_bytes  # noqa: E402
from schemas.identity import make_org_code, make_ssn  # noqa: E402
from processors.intake import fast_json_line, now_us, parse_json_line, validate_event  # noqa: E402
from workerfile.population import generate_population  # noqa: E402


def cpu_time(run) -> float:
    """CPU time of this process for one run (not wall time: the machine is shared, and
    the ratios between the runs are what matter)."""
    start = time.process_time()
    run()
    return time.process_time() - start


def long_career_sizes() -> tuple[int, int, int]:
    """A 40-year career with monthly contributions in 5 schemes: raw JSON bytes of its
    events, serialised state bytes, and number of events."""
    ssn = make_ssn("11010519700101001")
    org = make_org_code("91440300192203821")
    rng = random.Random(1)
    events = []
    for year in range(1986, 2026):
        for month in range(1, 13):
            for scheme in ("pension", "medical", "unemployment", "work_injury", "maternity"):
                events.append({
                    "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "type": "insurance.contribution", "ssn": ssn,
                    "occurred_at": f"{year}-{month:02d}-15T10:00:00+08:00", "source": org, "corrects": None,
                    "payload": {"scheme": scheme, "month": f"{year}-{month:02d}", "region": "110105",
                                "base_cny": 8000, "employer_amount_cny": 1280, "personal_amount_cny": 640}})
    state = new_state(ssn)
    for raw in events:
        fold_event(state, validate_event(raw))
    raw_bytes = sum(len(orjson.dumps(e)) + 1 for e in events)
    return raw_bytes, len(state_to_bytes(state)), len(events)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    items = generate_population(args.workers, seed=1, months=36)
    lines = [i.encode() if isinstance(i, str) else orjson.dumps(i) for i in items]
    n = len(lines)
    print(f"{args.workers} careers, {n} events ({n / args.workers:.0f} per worker), "
          f"{sum(map(len, lines)) / n:.0f} bytes per line; best of {args.rounds}")

    results = {}

    def parse_only(parser):  # json or orjson: its loads of every line, its JSONDecodeError ignored
        def parse():
            for line in lines:
                try:
                    parser.loads(line)
                except parser.JSONDecodeError:
                    pass

        return parse

    def validate():
        for line in lines:
            parse_json_line(line)

    def validate_fast():
        for line in lines:
            if fast_json_line(line, now_us()) is None:
                parse_json_line(line)

    def fold():
        fold_lines(lines).files()

    steps = (("parse only (json)", parse_only(json)), ("parse only (orjson)", parse_only(orjson)),
             ("parse + validate (ref)", validate), ("parse + validate (fast)", validate_fast),
             ("fold + derive files", fold))
    best = {name: float("inf") for name, _ in steps}
    for _ in range(args.rounds):
        for name, run in steps:
            best[name] = min(best[name], cpu_time(run))
    for name, _ in steps:
        results[name] = n / best[name]
        print(f"  {name:23s} {results[name]:>10,.0f} events/s")
    fold_rate = results["fold + derive files"]
    print(f"  fold / parse (json)     {fold_rate / results['parse only (json)']:.2f}")
    print(f"  fold / parse (orjson)   {fold_rate / results['parse only (orjson)']:.2f}")
    raw, state, count = long_career_sizes()
    print(f"40-year career, {count} contributions: raw events {raw / 1024:.0f} KiB, "
          f"state {state / 1024:.0f} KiB ({state / raw:.0%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
