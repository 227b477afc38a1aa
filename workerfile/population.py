"""A realistic generated population of workers and the events their organisations
publish about them: for the demo, the tests and the benchmarks.

Deterministic for a given seed. `generate_population` returns canonical JSON events
(dicts); with `anomalies=True` it also mixes in what real feeds contain: re-deliveries,
late corrections, retractions, an end of employment before its start, and bad lines.
Every event's source has the role for it (contract section 8): `population_registry`
is the organisation registry of the population of a seed (`workerfile generate
--organisations-out FILE`).
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from dataclasses import dataclass

from schemas.identity import make_org_code, make_ssn

REGIONS = ("110105", "310115", "440305", "330106", "510107", "420106", "320505", "370202")
OCCUPATIONS = ("6-18-01-01", "6-18-02-04", "6-20-03-01", "6-24-01-00", "6-31-01-03", "4-02-01-01", "6-05-01-02")
LEVELS_UP = ("junior", "intermediate", "senior", "technician", "senior_technician")
SCHEMES = ("pension", "medical", "unemployment", "work_injury")
BEFORE_LINES = (
    "this is not json",
    '{"event_id": "bad-1", "type": "training.enrolled"',
)


def _org(rng: random.Random) -> str:
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    return make_org_code("91" + "".join(rng.choice("0123456789") for _ in range(6))
                         + "".join(rng.choice(alphabet) for _ in range(9)))


# The honour-awarding bureaus: government bodies (credit codes 11...), the same in every
# population (not drawn, so that the other organisations of a seed stay what they were).
HONOR_AUTHORITIES = tuple(make_org_code(f"11440300MB1H0{n:04d}") for n in (1, 2))


@dataclass
class Orgs:
    """The organisations of a population: employers, schools, insurance bureaus,
    evaluators, honour-awarding bureaus."""

    employers: list[str]
    agencies: list[str]
    schools: list[str]
    bureaus: list[str]
    evaluators: list[str]
    honor_authorities: list[str]

    @classmethod
    def make(cls, rng: random.Random, size: int = 12) -> "Orgs":
        return cls(*[[_org(rng) for _ in range(n)] for n in (size, 2, 4, 2, 2)], list(HONOR_AUTHORITIES))

    def registry(self) -> dict[str, tuple[str, list[str]]]:
        """{code: (name, roles)}: each organisation with the role for what it says."""
        out: dict[str, tuple[str, list[str]]] = {}
        for codes, name, role in ((self.employers, "用人单位", "employer"), (self.agencies, "劳务派遣公司", "employer"),
                                  (self.schools, "职业培训学校", "training_provider"),
                                  (self.bureaus, "社会保险经办机构", "social_insurance"),
                                  (self.evaluators, "职业技能等级认定机构", "skill_evaluator"),
                                  (self.honor_authorities, "人力资源和社会保障局", "honor_authority")):
            for n, code in enumerate(codes, start=1):
                if code in out:  # (a code drawn twice: one organisation with both roles)
                    if role not in out[code][1]:
                        out[code][1].append(role)
                else:
                    out[code] = (f"{name} {n}", [role])
        return out


def population_registry(seed: int = 7) -> dict[str, tuple[str, list[str]]]:
    """The organisation registry ({code: (name, roles)}) that fits `generate_population`
    of this seed: every source of its events has the role for them."""
    return Orgs.make(random.Random(seed)).registry()


def make_worker_ssn(rng: random.Random, birth_year_range=(1966, 2004)) -> str:
    region = rng.choice(REGIONS)
    birth = dt.date(rng.randint(*birth_year_range), rng.randint(1, 12), rng.randint(1, 28))
    return make_ssn(region + birth.strftime("%Y%m%d") + f"{rng.randint(0, 999):03d}")


def _ts(day: dt.date, rng: random.Random) -> str:
    return f"{day.isoformat()}T{rng.randint(8, 18):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}+08:00"


def _month_iter(start: dt.date, months: int):
    y, m = start.year, start.month
    for _ in range(months):
        yield f"{y:04d}-{m:02d}"
        m += 1
        if m == 13:
            y, m = y + 1, 1


def worker_career(rng: random.Random, orgs: Orgs, ssn: str, months: int = 36, today: dt.date = dt.date(2026, 6, 1)) -> list[dict]:
    """The events of one worker's career over the last `months` months (about 2-3 per month)."""
    events: list[dict] = []

    def emit(kind: str, day: dt.date, source: str, payload: dict) -> dict:
        ev = {"event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "type": kind, "ssn": ssn,
              "occurred_at": _ts(day, rng), "source": source, "corrects": None, "payload": payload}
        events.append(ev)
        return ev

    start = today - dt.timedelta(days=30 * months)
    region = rng.choice(REGIONS)
    bureau = rng.choice(orgs.bureaus)
    emit("card.issued", start, bureau, {"card_no": f"C{rng.randint(10**8, 10**9 - 1)}", "issued_on": start.isoformat(), "region": region})
    # jobs: one to three, the last possibly still open
    job_start = start
    jobs = rng.randint(1, 3)
    employer = None
    for j in range(jobs):
        employer = rng.choice(orgs.employers)
        contract = rng.choices(("open_ended", "fixed_term", "dispatched", "part_time", "platform"), (5, 4, 1, 1, 1))[0]
        payload = {"employer": employer, "occupation_code": rng.choice(OCCUPATIONS), "contract_type": contract,
                   "written_contract": rng.random() < 0.9, "start_date": job_start.isoformat(), "region": region,
                   "monthly_wage_cny": rng.randrange(3500, 16000, 100)}
        if contract == "dispatched":
            payload["dispatch_agency"] = rng.choice(orgs.agencies)
        emit("employment.started", job_start, employer, payload)
        if j < jobs - 1 or rng.random() < 0.3:
            end = job_start + dt.timedelta(days=rng.randint(120, max(121, 30 * months // jobs)))
            end = min(end, today - dt.timedelta(days=1))
            emit("employment.ended", end, employer, {"employer": employer, "end_date": end.isoformat(),
                                                     "reason": rng.choice(("resigned", "contract_expired", "other"))})
            job_start = end + dt.timedelta(days=rng.randint(1, 40))
            if job_start >= today:
                break
    # insurance: enrolment, then monthly contributions in two or three schemes
    schemes = rng.sample(SCHEMES, rng.randint(2, 3))
    if "unemployment" not in schemes and rng.random() < 0.7:
        schemes[0] = "unemployment"
    first_month = next(_month_iter(start, 1))
    for scheme in schemes:
        emit("insurance.enrolled", start, bureau, {"scheme": scheme, "month": first_month, "region": region, "employer": employer})
    base = rng.randrange(4000, 20000, 100)
    for i, month in enumerate(_month_iter(start, months)):
        day = dt.date(int(month[:4]), int(month[5:]), 15)
        for scheme in schemes:
            if rng.random() < 0.93:
                emit("insurance.contribution", day, bureau, {
                    "scheme": scheme, "month": month, "region": region, "base_cny": base,
                    "employer_amount_cny": base * 16 // 100, "personal_amount_cny": base * 8 // 100, "employer": employer})
    if rng.random() < 0.1:
        emit("insurance.suspended", today - dt.timedelta(days=20), bureau, {"scheme": schemes[0], "month": f"{today:%Y-%m}"})
    # trainings and the certificates they lead to
    level_i = rng.randint(0, 2)
    for _ in range(rng.randint(1, 3)):
        school = rng.choice(orgs.schools)
        pid = f"P{rng.randint(1000, 9999)}"
        t_start = start + dt.timedelta(days=rng.randint(30, 30 * months - 60))
        occupation = rng.choice(OCCUPATIONS)
        planned = rng.choice((40, 80, 120, 160))
        emit("training.enrolled", t_start, school, {"program_id": pid, "program_name": f"技能提升培训 {pid}",
                                                    "start_date": t_start.isoformat(), "planned_hours": planned,
                                                    "occupation_code": occupation})
        t_end = min(t_start + dt.timedelta(days=rng.randint(20, 50)), today - dt.timedelta(days=1))
        if rng.random() < 0.85:
            passed = rng.random() < 0.85
            emit("training.completed", t_end, school, {"program_id": pid, "end_date": t_end.isoformat(),
                                                       "hours": planned, "passed": passed})
            if passed:
                level = LEVELS_UP[min(level_i, len(LEVELS_UP) - 1)]
                level_i += 1
                emit("certificate.issued", t_end, rng.choice(orgs.evaluators), {
                    "certificate_no": f"S{rng.randint(10**9, 10**10 - 1)}", "kind": rng.choice(("skill_level", "vocational_qualification")),
                    "occupation_code": occupation, "level": level, "issued_on": t_end.isoformat()})
        else:
            emit("training.withdrawn", t_end, school, {"program_id": pid, "date": t_end.isoformat()})
    if rng.random() < 0.05:
        emit("honor.awarded", today - dt.timedelta(days=60), rng.choice(orgs.honor_authorities),
             {"title": rng.choice(("city_craftsman", "provincial_craftsman", "model_worker", "competition_award")),
              "awarded_on": (today - dt.timedelta(days=60)).isoformat()})
    return events


def add_anomalies(rng: random.Random, events: list[dict], rate: float = 0.03) -> list[dict]:
    """Re-deliveries, corrections, retractions and bad lines, as real feeds have them.
    Returns new events to append (some are dicts, bad lines are strings)."""
    extra: list = []
    for ev in events:
        r = rng.random()
        if r < rate:
            extra.append(dict(ev))  # re-delivery
        elif r < rate * 1.5 and ev["type"] == "employment.started" and "monthly_wage_cny" in ev["payload"]:
            fixed = {**ev, "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "corrects": ev["event_id"],
                     "occurred_at": ev["occurred_at"].replace("+08:00", "+00:00"),
                     "payload": {**ev["payload"], "monthly_wage_cny": ev["payload"]["monthly_wage_cny"] + 500}}
            extra.append(fixed)
        elif r < rate * 1.7 and ev["type"] == "insurance.contribution":
            extra.append({**ev, "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "type": "event.retracted",
                          "corrects": None, "payload": {"event_id": ev["event_id"]}})
        elif r < rate * 1.8:
            bad = dict(ev)
            bad["ssn"] = ev["ssn"][:17] + ("0" if ev["ssn"][17] != "0" else "1")  # wrong check character
            extra.append(bad)
    if events:
        extra.extend(BEFORE_LINES)
    return extra


def generate_population(workers: int, seed: int = 7, months: int = 36, anomalies: bool = True, shuffle: bool = True) -> list:
    """Events of `workers` careers (dicts), anomalies (dicts and bad strings) mixed in."""
    rng = random.Random(seed)
    orgs = Orgs.make(rng)  # first: population_registry(seed) makes the same
    seen: set[str] = set()
    events: list = []
    for _ in range(workers):
        ssn = make_worker_ssn(rng)
        while ssn in seen:
            ssn = make_worker_ssn(rng)
        seen.add(ssn)
        events.extend(worker_career(rng, orgs, ssn, months))
    if anomalies:
        events.extend(add_anomalies(rng, [e for e in events if isinstance(e, dict)]))
    if shuffle:
        rng.shuffle(events)
    return events
