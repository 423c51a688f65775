"""Our minisign keys and signatures against the stock minisign tool, both ways (one contract)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from airgap_bundles.errors import KeyFormatError, SignatureError
from airgap_bundles.keys import PublicKey, SecretKey, generate, parse_signature, sign, verify

minisign = shutil.which("minisign")
needs_minisign = pytest.mark.skipif(minisign is None, reason="minisign not installed (scripts/test installs it)")


@needs_minisign
def test_stock_minisign_verifies_our_signature(tmp_path: Path):
    key = generate()
    (tmp_path / "k.pub").write_text(key.public.to_text())
    msg = tmp_path / "manifest.json"
    msg.write_bytes(b'{"bundle": 1}\n' * 1000)
    sig = sign(key, msg.read_bytes(), "bundle 1 seq 7")
    (tmp_path / "manifest.json.minisig").write_text(sig.to_text())
    out = subprocess.run([minisign, "-V", "-p", str(tmp_path / "k.pub"), "-m", str(msg)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "bundle 1 seq 7" in out.stdout
    msg.write_bytes(msg.read_bytes() + b"x")
    bad = subprocess.run([minisign, "-V", "-p", str(tmp_path / "k.pub"), "-m", str(msg)], capture_output=True, text=True)
    assert bad.returncode != 0


@needs_minisign
def test_we_verify_stock_minisign_signatures_and_read_its_keys(tmp_path: Path):
    subprocess.run([minisign, "-G", "-W", "-p", str(tmp_path / "m.pub"), "-s", str(tmp_path / "m.key")],
                   check=True, capture_output=True)
    msg = tmp_path / "data"
    msg.write_bytes(b"hello")
    subprocess.run([minisign, "-S", "-s", str(tmp_path / "m.key"), "-m", str(msg), "-t", "from minisign"],
                   check=True, capture_output=True)
    pub = PublicKey.from_text((tmp_path / "m.pub").read_text())
    sig = parse_signature((tmp_path / "data.minisig").read_text())
    assert verify([pub], b"hello", sig) == pub and sig.trusted_comment == "from minisign"
    with pytest.raises(SignatureError):
        verify([pub], b"hellO", sig)
    # minisign's unencrypted secret key loads, and signs what minisign's public key verifies.
    sk = SecretKey.from_text((tmp_path / "m.key").read_text())
    assert sk.public == pub
    assert verify([pub], b"x", sign(sk, b"x", "ours")) == pub


@needs_minisign
def test_stock_minisign_signs_with_our_unencrypted_secret_key(tmp_path: Path):
    key = generate()
    (tmp_path / "k.key").write_text(key.to_text())
    (tmp_path / "d").write_bytes(b"data")
    out = subprocess.run([minisign, "-S", "-s", str(tmp_path / "k.key"), "-m", str(tmp_path / "d")],
                         capture_output=True, text=True, input="")
    assert out.returncode == 0, out.stderr
    assert verify([key.public], b"data", parse_signature((tmp_path / "d.minisig").read_text()))


def test_password_protected_key_round_trip():
    key = generate()
    text = key.to_text(password="correct horse")
    assert SecretKey.from_text(text, password="correct horse") == key
    with pytest.raises(KeyFormatError, match="wrong password"):
        SecretKey.from_text(text, password="wrong")
    with pytest.raises(KeyFormatError, match="password-protected"):
        SecretKey.from_text(text)


def test_untrusted_key_and_tampered_comment_refused():
    a, b = generate(), generate()
    sig = sign(a, b"m", "seq 1")
    with pytest.raises(SignatureError, match="not trusted"):
        verify([b.public], b"m", sig)
    forged = parse_signature(sig.to_text().replace("seq 1", "seq 9"))
    with pytest.raises(SignatureError, match="does not match"):
        verify([a.public], b"m", forged)


@pytest.mark.parametrize("text", ["", "garbage", "untrusted comment: x\nRWQ=\n"])
def test_bad_public_keys(text):
    with pytest.raises(KeyFormatError):
        PublicKey.from_text(text)
