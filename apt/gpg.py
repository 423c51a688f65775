"""OpenPGP through GnuPG, the tool apt itself trusts: gpgv to verify upstream archives, gpg to sign ours.

The site's APT signing key lives in a GnuPG home inside the store (`keys/gnupg`); every gpg
call names that home, and the agent it starts is stopped when the call is done.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from airgap_mirror.errors import InputError, StoreError

from .errors import ArchiveSignatureError

__all__ = ["verify_clearsigned", "verify_detached", "SigningKey"]


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise InputError(f"`{tool}` is not installed: apt-get install {'gpgv' if tool == 'gpgv' else 'gnupg'}")
    return path


@contextlib.contextmanager
def _keyring_files(keyrings: Sequence[Path]) -> Iterator[list[str]]:
    """gpgv reads binary keyrings only; armored (.asc) ones are dearmored into a temp folder."""
    with tempfile.TemporaryDirectory(prefix="airgap-keys-") as tmp:
        out = []
        for i, k in enumerate(keyrings):
            k = Path(k)
            if not k.is_file():
                raise InputError(f"keyring {k} does not exist (install debian-archive-keyring, or fix the keyring setting)")
            data = k.read_bytes()
            if data.lstrip().startswith(b"-----BEGIN PGP"):
                dest = Path(tmp) / f"k{i}.gpg"
                subprocess.run([_need("gpg"), "--batch", "--yes", "--dearmor", "-o", str(dest), str(k)],
                               check=True, capture_output=True)
                out.append(str(dest))
            else:
                out.append(str(k.resolve()))
        yield out


def _gpgv(args: list[str], keyrings: Sequence[Path], what: str, stdin: bytes | None = None) -> bytes:
    with _keyring_files(keyrings) as rings:
        cmd = [_need("gpgv"), "--quiet"]
        for r in rings:
            cmd += ["--keyring", r]
        proc = subprocess.run(cmd + args, input=stdin, capture_output=True)
    if proc.returncode != 0:
        reason = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ArchiveSignatureError(
            f"{what}: signature does not verify against {', '.join(str(k) for k in keyrings)}"
            f" ({reason[-1] if reason else 'no valid signature'}); nothing from it is used"
        )
    return proc.stdout


def verify_clearsigned(data: bytes, keyrings: Sequence[Path], what: str) -> bytes:
    """The signed text of an InRelease file, if a key in `keyrings` made the signature."""
    if not data.startswith(b"-----BEGIN PGP SIGNED MESSAGE-----"):
        raise ArchiveSignatureError(f"{what}: not a clear-signed file; nothing from it is used")
    return _gpgv(["--output", "-", "-"], keyrings, what, stdin=data)


def verify_detached(data: bytes, signature: bytes, keyrings: Sequence[Path], what: str) -> None:
    with tempfile.TemporaryDirectory(prefix="airgap-sig-") as tmp:
        d, s = Path(tmp) / "Release", Path(tmp) / "Release.gpg"
        d.write_bytes(data)
        s.write_bytes(signature)
        _gpgv([str(s), str(d)], keyrings, what)


class SigningKey:
    """The site's APT signing key in a GnuPG home of its own."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)

    @property
    def fingerprint_file(self) -> Path:
        return self.home / "airgap-mirror.fpr"

    def exists(self) -> bool:
        return self.fingerprint_file.is_file()

    def fingerprint(self) -> str:
        try:
            return self.fingerprint_file.read_text().strip()
        except FileNotFoundError as exc:
            raise StoreError(f"no APT signing key in {self.home}: run `mirror apt-key generate`") from exc

    @contextlib.contextmanager
    def _session(self) -> Iterator[None]:
        try:
            yield
        finally:
            gpgconf = shutil.which("gpgconf")
            if gpgconf:
                subprocess.run([gpgconf, "--homedir", str(self.home), "--kill", "gpg-agent"], capture_output=True)

    def _gpg(self, *args: str, stdin: bytes | None = None) -> bytes:
        cmd = [_need("gpg"), "--homedir", str(self.home), "--batch", "--yes", "--no-tty",
               "--pinentry-mode", "loopback", "--passphrase", "", *args]
        proc = subprocess.run(cmd, input=stdin, capture_output=True)
        if proc.returncode != 0:
            raise StoreError(f"gpg {args[0]} failed: {proc.stderr.decode('utf-8', 'replace').strip()}")
        return proc.stdout

    def generate(self, name: str = "airgap-mirror APT repository") -> str:
        """Create an Ed25519 signing key (no passphrase: publishing runs unattended); returns its fingerprint."""
        if self.exists():
            raise StoreError(f"an APT signing key already exists in {self.home} ({self.fingerprint()})")
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.home, 0o700)
        with self._session():
            self._gpg("--quick-generate-key", f"{name} <apt@airgap-mirror.invalid>", "ed25519", "sign", "never")
            out = self._gpg("--with-colons", "--list-secret-keys").decode()
        fpr = next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))
        tmp = self.fingerprint_file.with_suffix(".tmp")
        tmp.write_text(fpr + "\n")
        os.replace(tmp, self.fingerprint_file)
        return fpr

    def export(self, *, armor: bool = True) -> bytes:
        fpr = self.fingerprint()
        with self._session():
            return self._gpg("--export", *(["--armor"] if armor else []), fpr)

    def sign_release(self, release: bytes) -> tuple[bytes, bytes]:
        """(InRelease, Release.gpg) for the bytes of a Release file."""
        fpr = self.fingerprint()
        with self._session():
            inrelease = self._gpg("--local-user", fpr, "--digest-algo", "SHA512", "--clearsign", stdin=release)
            detached = self._gpg("--local-user", fpr, "--digest-algo", "SHA512", "--armor", "--detach-sign",
                                 stdin=release)
        return inrelease, detached
