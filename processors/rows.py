"""The flat row of a worker's file (`schemas.outputs.WorkerFileRow`), published on
`worker-file-rows` next to the file for relational sinks (Kafka Connect's JDBC sink,
deploy/connect/): the figures a BI tool needs as scalar columns, and the whole file as
JSON text. Pure: a function of the file alone, so the row of a published file is the row
of the same file folded offline.
"""

from __future__ import annotations

import orjson
from processors.stats import worker_region


def province_of(region: str | None) -> str | None:
    """`440305` -> `440000`; None for None."""
    return f"{region[:2]}0000" if region and len(region) >= 2 else None


def file_json(file: dict) -> str:
    """The file as JSON text, its fields in the file's order (dates are already strings)."""
    return orjson.dumps(file).decode("utf-8")


def file_row(file: dict) -> dict:
    """The WorkerFileRow of a file in its JSON form (as published: with its version)."""
    region = worker_region(file)
    employers = file.get("current_employers") or []
    grants = (file.get("services") or {}).get("skill_upgrade_subsidy") or []
    notices = (file.get("services") or {}).get("notices") or []
    insurance = file.get("insurance") or []
    return {
        "ssn": file["ssn"],
        "version": file.get("version") or 0,
        "birth_date": file["birth_date"],
        "sex": file["sex"],
        "region": region,
        "province": province_of(region),
        "highest_skill_level": file.get("highest_skill_level"),
        "current_employer": employers[0] if employers else None,
        "current_employers": len(employers),
        "employments": len(file.get("employments") or []),
        "training_hours": file.get("training_hours") or 0,
        "trainings_completed": sum(1 for t in file.get("trainings") or [] if t.get("status") == "completed"),
        "certificates": sum(1 for c in file.get("certificates") or [] if c.get("revoked_on") is None),
        "insurance_active_schemes": sum(1 for i in insurance if i.get("status") == "active"),
        "pension_months": sum(i.get("months_contributed") or 0 for i in insurance if i.get("scheme") == "pension"),
        "subsidy_grants": len(grants),
        "subsidy_paid_cny": sum(p.get("amount_cny") or 0 for g in grants for p in g.get("payments") or []),
        "open_notices": len(notices),
        "issues": len(file.get("issues") or []),
        "applied_events": file.get("applied_events") or 0,
        "file_json": file_json(file),
    }
