"""PEP 740 provenance carried across: where an index names a file's provenance (its page's
`provenance` key or `data-provenance` attribute), the sync fetches it once, with the file, and keeps
it as a blob beside it; publish serves it at the Integrity API's path.

What is checked here is only that it is a provenance object whose attestations name this very
file (its name and sha256): the signatures are the installer's or the auditor's to verify, inside,
against the Sigstore trust root (`pypi-attestations verify pypi --offline`), so a mirror adds no
trust of its own.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from airgap_mirror import logs
from airgap_mirror.credentials import Credentials
from airgap_mirror.store import Store
from airgap_mirror.urls import strip_credentials

_log = logs.get(__name__)

__all__ = ["Wanted", "fetch_provenances", "provenance_subjects"]

MAX_PROVENANCE = 2 << 20  # PyPI's are a few KiB per attestation


@dataclass(frozen=True, slots=True)
class Wanted:
    sha256: str  # the distribution file's
    filename: str
    url: str  # its provenance's, as the index named it


def provenance_subjects(doc: Any) -> set[tuple[str, str]]:
    """(name, sha256) of every subject the provenance's attestations state (their in-toto statements,
    unsigned reading). Raises ValueError on what is no PEP 740 provenance object."""
    if not isinstance(doc, dict) or not isinstance(doc.get("attestation_bundles"), list):
        raise ValueError("no attestation_bundles")
    out = set()
    for bundle in doc["attestation_bundles"]:
        for att in (bundle.get("attestations") if isinstance(bundle, dict) else None) or []:
            envelope = att.get("envelope") if isinstance(att, dict) else None
            statement = envelope.get("statement") if isinstance(envelope, dict) else None
            if not isinstance(statement, str):
                raise ValueError("an attestation without its statement")
            try:
                stated = json.loads(base64.b64decode(statement, validate=True))
            except (binascii.Error, ValueError) as exc:
                raise ValueError(f"an attestation's statement is not base64 JSON ({exc})") from exc
            for subject in (stated.get("subject") or []) if isinstance(stated, dict) else []:
                digest = subject.get("digest") if isinstance(subject, dict) else None
                if isinstance(digest, dict) and isinstance(subject.get("name"), str) and isinstance(digest.get("sha256"), str):
                    out.add((subject["name"], digest["sha256"].lower()))
    return out


def fetch_provenances(store: Store, wanted: Iterable[Wanted], *, credentials: Credentials | None = None,
                      concurrency: int = 16) -> tuple[dict[str, str], list[str]]:
    """Fetch each provenance, keep those that state their file: (file sha256 → provenance blob,
    warnings). A provenance that cannot be had or names another file is left out and said: the file
    is mirrored all the same (an index may lose a provenance; a client that requires one will say so)."""
    from airgap_mirror.fetch import for_each_url

    by_url: dict[str, list[Wanted]] = {}
    for w in wanted:
        by_url.setdefault(w.url, []).append(w)
    kept: dict[str, str] = {}
    said: list[str] = []
    lock = threading.Lock()

    def one(client: Any, url: str) -> None:
        where = strip_credentials(url)
        try:
            with client.stream("GET", url, headers={"Accept": "application/vnd.pypi.integrity.v1+json, application/json"}) as resp:
                if resp.status_code != 200:
                    raise ValueError(f"HTTP {resp.status_code}")
                body = bytearray()
                for chunk in resp.iter_bytes():
                    body += chunk
                    if len(body) > MAX_PROVENANCE:
                        raise ValueError(f"larger than {MAX_PROVENANCE} bytes")
            subjects = provenance_subjects(json.loads(bytes(body)))
        except Exception as exc:  # noqa: BLE001  (the file is mirrored without it, and that is said)
            with lock:
                said.extend(f"{w.filename}: its provenance ({where}) was not mirrored: {exc}" for w in by_url[url])
            return
        blob = None
        for w in by_url[url]:
            if (w.filename, w.sha256) not in subjects:
                with lock:
                    said.append(f"{w.filename}: the provenance its index names ({where}) attests "
                                f"{', '.join(sorted(n for n, _ in subjects)) or 'nothing'}, not this file (sha256 "
                                f"{w.sha256[:12]}...): not mirrored")
                continue
            blob = blob or store.put_bytes(bytes(body))
            with lock:
                kept[w.sha256] = blob

    for_each_url(list(by_url), one, concurrency=concurrency, credentials=credentials)
    for line in said:
        _log.warning("%s", line)
    return kept, said
