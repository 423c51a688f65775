"""Git repositories through the git CLI: which commit a ref names now, and a checkout of it.

The git CLI does the talking, so ssh keys, the ssh agent, `GIT_SSH_COMMAND` and proxies work as
they do for the admin's own clones. Credentials in an https URL never reach git's command line
or a config file: they travel as an `Authorization` header in git's environment config
(`GIT_CONFIG_COUNT`), and every message goes through `redact`.

A bare cache per repository (STORE/cache/git/<hash>.git) makes later fetches incremental.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from airgap_mirror.errors import TransportError
from airgap_mirror.urls import redact, redact_text, strip_credentials

__all__ = ["git_env", "resolve_ref", "checkout", "commit_time", "is_commit"]

_SHA = re.compile(r"[0-9a-f]{40}")
_TIMEOUT = 600


def is_commit(ref: str | None) -> bool:
    return bool(ref) and bool(_SHA.fullmatch(ref or ""))


def git_env(url: str) -> tuple[str, dict[str, str]]:
    """The credential-free URL to give git, and the environment that authorises it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_CONFIG")}
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["GIT_ASKPASS"] = "true"  # never prompt; a missing credential is an error
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.username is not None:
        user, password = unquote(parts.username), unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        env.update({"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
                    "GIT_CONFIG_VALUE_0": f"Authorization: Basic {token}"})
        return strip_credentials(url), env
    return url, env


def _run(args: list[str], url: str, env: dict[str, str], *, cwd: Path | None = None, what: str) -> str:
    try:
        proc = subprocess.run(["git", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=_TIMEOUT)
    except FileNotFoundError as exc:
        raise TransportError("git is not installed: install it (apt-get install git) to mirror git requirements") from exc
    except subprocess.TimeoutExpired as exc:
        raise TransportError(f"git {what} {redact(url)}: no answer in {_TIMEOUT} s") from exc
    if proc.returncode != 0:
        detail = " ".join(proc.stderr.split())[-600:]
        parts = urlsplit(url)
        raise TransportError(f"git {what} {redact(url)}: {redact_text(detail, [unquote(x) for x in (parts.username, parts.password) if x])}")
    return proc.stdout


def resolve_ref(url: str, ref: str | None) -> tuple[str | None, str]:
    """(commit or None, how) for `ref` on the remote, asking it with `git ls-remote`.

    None when the ref is not a branch or tag name (an abbreviated commit, say): the caller fetches
    and resolves it locally.
    """
    if is_commit(ref):
        return ref, "commit"
    plain, env = git_env(url)
    out = _run(["ls-remote", "--", plain], url, env, what="ls-remote")
    refs: dict[str, str] = {}
    for line in out.splitlines():
        sha, _, name = line.partition("\t")
        refs[name.strip()] = sha.strip()
    if ref is None:
        if "HEAD" in refs:
            return refs["HEAD"], "HEAD"
        raise TransportError(f"git {redact(url)}: the repository has no HEAD; name a branch or tag with @REF")
    for name, how in ((f"refs/tags/{ref}^{{}}", "tag"), (f"refs/tags/{ref}", "tag"), (f"refs/heads/{ref}", "branch")):
        if name in refs:
            return refs[name], how
    if re.fullmatch(r"[0-9a-f]{4,39}", ref):
        return None, "abbreviated commit"
    raise TransportError(f"git {redact(url)}: no branch or tag named {ref!r}")


def _cache_dir(cache: Path, url: str) -> Path:
    return cache / (hashlib.sha256(strip_credentials(url).encode()).hexdigest()[:24] + ".git")


def checkout(url: str, ref: str | None, commit: str | None, cache: Path, dest: Path) -> str:
    """Fetch the repository into the bare cache and check `commit` (or `ref`) out at `dest`; returns the commit."""
    plain, env = git_env(url)
    bare = _cache_dir(cache, url)
    if not (bare / "HEAD").exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = bare.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        _run(["init", "--quiet", "--bare", str(tmp)], url, env, what="init")
        tmp.rename(bare)
    have = commit and subprocess.run(["git", "-C", str(bare), "cat-file", "-e", f"{commit}^{{commit}}"],
                                     env=env, capture_output=True).returncode == 0
    if not have:
        _run(["-C", str(bare), "fetch", "--quiet", "--force", "--prune", "--no-write-fetch-head", "--", plain,
              "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"], url, env, what="fetch")
        if commit and subprocess.run(["git", "-C", str(bare), "cat-file", "-e", f"{commit}^{{commit}}"],
                                     env=env, capture_output=True).returncode != 0:
            # A commit no branch or tag reaches (a pull request head): ask for it by id.
            _run(["-C", str(bare), "fetch", "--quiet", "--no-write-fetch-head", "--", plain, commit], url, env,
                 what="fetch commit")
    if commit is None:
        if ref is None:
            raise TransportError(f"git {redact(url)}: nothing to check out")
        commit = _run(["-C", str(bare), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], url, env,
                      what=f"find {ref!r} in").strip()
    if dest.exists():
        shutil.rmtree(dest)
    _run(["clone", "--quiet", "--no-checkout", "--shared", str(bare), str(dest)], url, env, what="clone")
    _run(["-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", commit], url, env, cwd=dest,
         what=f"check out {commit[:12]} of")
    return commit


def commit_time(repo: Path) -> int:
    """The commit time of HEAD (a stable SOURCE_DATE_EPOCH for builds from it)."""
    out = subprocess.run(["git", "log", "-1", "--format=%ct"], cwd=repo, capture_output=True, text=True)
    try:
        return int(out.stdout.strip())
    except ValueError:
        return 315532800


def display_url(url: str, commit: str, subdirectory: str | None) -> str:
    """What the catalog records: `git+URL@COMMIT[#subdirectory=...]`, credentials removed."""
    parts = urlsplit(strip_credentials(url))
    base = urlunsplit(parts)
    return f"git+{base}@{commit}" + (f"#subdirectory={subdirectory}" if subdirectory else "")
