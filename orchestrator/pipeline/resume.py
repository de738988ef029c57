"""Resuming a sweep: the stored run it continues, checked to be the same sweep, and how it measured.

A run is resumed with the sweep file it started from; its ok trials are kept and the rest run.
A run started before invocations existed stored a spec without them: it goes on as it was
measured (``as_started``), one invocation per trial with its stored settings.
"""

from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from orchestrator.settings import DEFAULTS, Sampling
from orchestrator.store.layout import validate_run_id
from orchestrator.store.location import Location, resolve_location
from orchestrator.store.writer import RunStore
from workloads.errors import UserError


def _stored_run(results: str | Path | Location, run_id: str) -> dict[str, Any]:
    """Return the runs row of the run to resume.

    Raises:
        UserError: a malformed id, a bad location, or no such run.
    """
    location = resolve_location(results)
    stored = RunStore(location, validate_run_id(run_id)).read_run()
    if stored is None:
        raise UserError(f"--resume {run_id}: no such run in {location.shown!r}; pass the run id of an "
                        "earlier sweep (`topobench query \"SELECT run_id, status FROM runs\"`).")
    return stored


def as_started(results: str | Path | Location, run_id: str, sampling: Sampling) -> Sampling:
    """Return the sampling to resume ``run_id`` with: ``sampling``, or how a run from before invocations measured.

    A spec stored before invocations existed has no ``invocations``: its trials were measured
    in one invocation of ``repetitions`` rounds, with the defaults of then. Settings left at
    today's defaults take the stored values, so the rest is measured as the first part was.
    """
    stored = json.loads(_stored_run(results, run_id)["spec"] or "{}").get("sampling", {})
    if "invocations" in stored:
        return sampling
    kept = {f.name: stored[f.name] for f in fields(Sampling)
            if f.name in stored and getattr(sampling, f.name) == getattr(DEFAULTS, f.name)}
    return replace(sampling, **kept, invocations=1)


def _same_spec(stored: str, new: str) -> bool:
    """Return whether two stored specs ask for the same trials (one from before invocations may lack the key)."""
    a, b = json.loads(stored or "{}"), json.loads(new)
    if "invocations" not in a.get("sampling", {}) and b.get("sampling", {}).get("invocations") == 1:
        del b["sampling"]["invocations"]
    return a == b


def resume_rows(results: str | Path | Location, run_id: str, spec_json: str) -> list[dict[str, Any]]:
    """Return the stored ok rows of the run to resume, after checking it is the same run.

    Raises:
        UserError: no such run, or it was started from a different spec.
    """
    stored = _stored_run(results, run_id)
    if not _same_spec(stored["spec"], spec_json):
        raise UserError(f"--resume {run_id}: this sweep file differs from the one that run used, so "
                        "its trials would not be comparable; resume with the same file, or start a new run.")
    return [r for r in RunStore(resolve_location(results), run_id).read_trials() if r["status"] == "ok"]
