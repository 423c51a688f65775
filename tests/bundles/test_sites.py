"""Transfers per destination site: each site's chain of deltas is its own, receipts from inside say
what a site holds and give the smallest delta, and every command names snapshots the same way."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from airgap_mirror.store import Store
from tests.builders.bundles import snapshot_of
from tests.builders.cli import run_mirror


class Outside:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.store = Store(tmp_path / "outside").create()
        self.blobs = [os.urandom(30_000) for _ in range(6)]
        run_mirror("keygen", "--out", str(tmp_path / "k"))
        self.n = 0

    def snapshot(self, blobs: list[bytes], tag: str) -> str:
        return snapshot_of(self.store, blobs, tag=tag)

    def bundle(self, *args: str) -> dict:
        self.n += 1
        out = self.tmp / "media" / f"{self.n}.bundle"
        proc = run_mirror("bundle", "create", "--store", str(self.store.root), "--key", str(self.tmp / "k.key"),
                          "-o", str(out), "--json", *args)
        doc = json.loads(proc.stdout)
        doc["path"] = str(out)
        return doc


def _inside(tmp_path: Path, name: str) -> Path:
    root = tmp_path / name
    run_mirror("trust", "add", str(tmp_path / "k.pub"), "--store", str(root))
    return root


def _import(bundle: dict, inside: Path, check: bool = True):  # noqa: ANN202
    return run_mirror("bundle", "import", bundle["path"], "--store", str(inside), "--no-publish", "--json", check=check)


def test_two_sites_keep_their_own_chains_through_a_one_off_export(tmp_path):
    """The defect: one `bundle create --snapshot <older>` moved the single last-exported back and the
    next nightly wrote a delta on a snapshot the inside never had. Per site, nothing moves another's."""
    o = Outside(tmp_path)
    a, b = _inside(tmp_path, "in-a"), _inside(tmp_path, "in-b")
    s1 = o.snapshot(o.blobs[:3], "1")
    _import(o.bundle("--site", "plant-a"), a)
    _import(o.bundle("--site", "plant-b"), b)
    s2 = o.snapshot(o.blobs[:4], "2")
    d_a2 = o.bundle("--site", "plant-a", "--since", "last-exported")
    assert d_a2["base"] == s1 and d_a2["blobs"] == 1
    _import(d_a2, a)
    # A one-off: the old snapshot, whole, to an auditor; then the nightly deltas of both sites.
    one_off = o.bundle("--site", "audit", "--snapshot", s1[:12])
    assert one_off["snapshot"] == s1 and one_off["base"] is None
    s3 = o.snapshot(o.blobs[:5], "3")
    d_a3 = o.bundle("--site", "plant-a", "--since", "last-exported")
    d_b3 = o.bundle("--site", "plant-b", "--since", "last-exported")
    assert (d_a3["base"], d_a3["blobs"]) == (s2, 1)      # plant-a's chain: s1 → s2 → s3
    assert (d_b3["base"], d_b3["blobs"]) == (s1, 2)      # plant-b never had s2
    for delta, inside in ((d_a3, a), (d_b3, b)):
        assert json.loads(_import(delta, inside).stdout)["current"] is True
    for inside in (a, b):
        assert Store(inside).ref("current") == s3
    # A delta made for plant-a, carried to plant-b by mistake: refused, naming what plant-b needs.
    s4 = o.snapshot(o.blobs[:6], "4")
    d_a4 = o.bundle("--site", "plant-a", "--since", "last-exported")
    wrong = _import(d_a4, b, check=False)
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    assert "made for site 'plant-a'" in wrong.stderr and "--site plant-b" in wrong.stderr
    assert Store(b).ref("current") == s3
    # `last-exported:SITE` names each site's base in any command.
    diff = json.loads(run_mirror("diff", "last-exported:plant-b", "current", "--store", str(o.store.root), "--json").stdout)
    assert (diff["old"], diff["new"], diff["files_to_carry"]) == (s3, s4, 1)
    sites = {r["site"]: r for r in json.loads(run_mirror("bundle", "sites", "--store", str(o.store.root), "--json").stdout)}
    assert sites["plant-a"]["next_delta_base"] == s4 and sites["plant-b"]["next_delta_base"] == s3
    assert sites["audit"]["next_delta_base"] == s1


def test_a_receipt_gives_the_smallest_delta_and_records_what_the_site_holds(tmp_path):
    o = Outside(tmp_path)
    inside = _inside(tmp_path, "in")
    s1 = o.snapshot(o.blobs[:3], "1")
    _import(o.bundle("--site", "plant-a"), inside)
    s2 = o.snapshot(o.blobs[3:5], "2")                   # s2 shares nothing with s1
    _import(o.bundle("--site", "plant-a", "--since", "last-exported"), inside)
    s3 = o.snapshot(o.blobs[:3] + [o.blobs[5]], "3")     # back to s1's files, plus one new
    receipt = tmp_path / "media" / "plant-a.receipt"
    made = json.loads(run_mirror("bundle", "receipt", "-o", str(receipt), "--store", str(inside), "--json").stdout)
    assert made["site"] == "plant-a" and set(made["snapshots"]) == {s1, s2} and made["current"] == s2
    by_base = o.bundle("--site", "plant-a", "--since", "last-exported")
    by_receipt = o.bundle("--since-receipt", str(receipt))
    assert by_base["blobs"] == 4                        # on s2 alone: s1's three files again, and the new one
    assert by_receipt["blobs"] == 1 and by_receipt["site"] == "plant-a" and by_receipt["base"] == s2
    done = json.loads(_import(by_receipt, inside).stdout)
    assert done["current"] is True and Store(inside).ref("current") == s3
    sites = json.loads(run_mirror("bundle", "sites", "--store", str(o.store.root), "--json").stdout)
    assert sites[0]["last_receipt"] == made["receipt"] and set(sites[0]["holds"]) == {s1, s2}
    assert sites[0]["next_delta_base"] == s3            # the bundle sent after the receipt


def test_a_tampered_or_foreign_receipt_is_refused(tmp_path):
    o = Outside(tmp_path)
    a, b = _inside(tmp_path, "in-a"), _inside(tmp_path, "in-b")
    o.snapshot(o.blobs[:2], "1")
    _import(o.bundle("--site", "plant-a"), a)
    _import(o.bundle("--site", "plant-b"), b)
    o.snapshot(o.blobs[:3], "2")
    r_a, r_b = tmp_path / "a.receipt", tmp_path / "b.receipt"
    run_mirror("bundle", "receipt", "-o", str(r_a), "--store", str(a))
    run_mirror("bundle", "receipt", "-o", str(r_b), "--store", str(b))
    o.bundle("--since-receipt", str(r_a))               # pins plant-a's key

    doc = json.loads(r_a.read_text())
    doc["receipt"]["snapshots"] = sorted(doc["receipt"]["snapshots"] + ["0" * 64])
    tampered = tmp_path / "tampered.receipt"
    tampered.write_text(json.dumps(doc))
    # A receipt of plant-a from another store (another key) and plant-b's receipt offered as plant-a's.
    stranger = _inside(tmp_path, "stranger")
    forged = tmp_path / "forged.receipt"
    run_mirror("bundle", "receipt", "-o", str(forged), "--store", str(stranger), "--site", "plant-a")
    for path, site, message in ((tampered, [], "altered after it was signed"), (forged, [], "refused as foreign"),
                                (r_b, ["--site", "plant-a"], "from site 'plant-b', not 'plant-a'"),
                                (tmp_path / "k.pub", [], "not a receipt")):
        bad = run_mirror("bundle", "create", "--store", str(o.store.root), "--key", str(tmp_path / "k.key"), "-o",
                         str(tmp_path / "x.bundle"), "--since-receipt", str(path), *site, check=False)
        assert bad.returncode != 0 and message in bad.stderr and "Traceback" not in bad.stderr, (path, bad.stderr)
        assert not (tmp_path / "x.bundle").exists()


@pytest.mark.parametrize("command", [["diff", "{name}", "current"], ["sbom", "{name}"],
                                     ["bundle", "create", "--key", "{key}", "-o", "{out}", "--snapshot", "{name}"],
                                     ["bundle", "create", "--key", "{key}", "-o", "{out}", "--since", "{name}"]])
def test_every_command_names_snapshots_the_same_way(tmp_path, command):
    o = Outside(tmp_path)
    s1 = o.snapshot(o.blobs[:2], "1")
    first = o.bundle("--site", "x")
    o.snapshot(o.blobs[:3], "2")
    fill = {"key": str(tmp_path / "k.key"), "out": str(tmp_path / "o.bundle")}
    for name in (s1, s1[:10], "previous", "last-exported:x", first["path"]):
        args = [a.format(name=name, **fill) for a in command]
        run_mirror(*args, "--store", str(o.store.root))
    for name in ("yesterday", "last-exported:nowhere", "last-exported:bad/site", "0000", "../etc/passwd"):
        args = [a.format(name=name, **fill) for a in command]
        bad = run_mirror(*args, "--store", str(o.store.root), check=False)
        assert bad.returncode == 2, (name, bad.stderr)
        assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr


def test_secret_keys_are_private_from_the_start(tmp_path):
    """The signing key (`keygen`, also over an old world-readable file with --force) and the inside
    store's receipt key are 0600: written to a private temp file, then renamed in."""
    import stat

    old = tmp_path / "k.key"
    old.write_text("old")
    old.chmod(0o644)
    run_mirror("keygen", "--out", str(tmp_path / "k"), "--force")
    inside = _inside(tmp_path, "in")
    run_mirror("bundle", "receipt", "-o", str(tmp_path / "r"), "--store", str(inside))
    for key in (old, inside / "site-key" / "receipt.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
