"""The cooldown applied where it can be: uv compares each file's upload time with the cutoff, and a
file whose index gives no upload time (a plain PEP 503 HTML index, as devpi or a folder served over
HTTP) is left out as if it were young, so every resolution from such an index would fail. Each index
is asked once a sync whether its pages carry PEP 700 upload times (one project page, in JSON); a job
that searches an index which does not keeps its requirements as they are, uncooled, and its app
says why."""

from __future__ import annotations

import dataclasses
import json

from packaging.requirements import InvalidRequirement, Requirement

from airgap_mirror import logs
from airgap_mirror.fetch.client import pooled_client
from airgap_mirror.sync.jobs import Job
from airgap_mirror.sync.state import SyncRun
from airgap_mirror.urls import index_project_url, strip_credentials

_log = logs.get(__name__)
_JSON = "application/vnd.pypi.simple.v1+json"


def cooled(run: SyncRun, jobs: list[Job]) -> list[Job]:
    """`jobs` with the cooldown kept only where every index a job searches gives upload times."""
    asked = run.upload_times
    out: list[Job] = []
    for job in jobs:
        if not job.exclude_newer:
            out.append(job)
            continue
        project = _first_project(job)
        lacking = [u for u in job.index.search_order if not _gives_times(run, u, project, asked)]
        if not lacking:
            out.append(job)
            continue
        out.append(dataclasses.replace(job, exclude_newer=None))
        result = run.results.get(job.key[0])
        warning = (f"the cooldown (exclude-newer) is not applied: {', '.join(strip_credentials(u) for u in lacking)} "
                   "gives no upload times (PEP 700) to compare with, and uv would take every file of it for a young one")
        if result is not None and warning not in result.warnings:
            result.warnings.append(warning)
    return out


def _first_project(job: Job) -> str:
    for text in job.requirements:
        try:
            return Requirement(text).name
        except InvalidRequirement:
            continue
    return "pip"


def _gives_times(run: SyncRun, index: str, project: str, asked: dict[str, bool]) -> bool:
    key = strip_credentials(index)
    if key not in asked:
        asked[key] = False
        try:
            url = strip_credentials(index_project_url(index, project))  # (credentials go by host)
            resp = pooled_client(run.credentials).get(url, headers={"Accept": _JSON})
            if resp.status_code == 200 and resp.headers.get("content-type", "").startswith(_JSON):
                files = json.loads(resp.content).get("files") or []
                asked[key] = any(isinstance(f, dict) and f.get("upload-time") for f in files)
        except Exception:  # noqa: BLE001  (an index that cannot be asked gives nothing to compare)
            _log.debug("asking %s for upload times failed", key, exc_info=True)
    return asked[key]
