"""The exception tree of the mirror core; the CLI maps each branch to an exit code.

    MirrorError
    ├── InputError              bad user input: a manifest, a flag, a config file
    │   ├── RequirementsError   a requirements line (carries file and line)
    │   ├── NotYetSupported     valid input this version cannot mirror yet
    │   └── ConfigError         mirror.toml or a CLI setting
    ├── ResolutionError         the resolver could not satisfy an app for a target
    ├── TransportError          the network failed (after retries)
    ├── IntegrityError          bytes are not what was promised (hash, size, signature)
    └── StoreError              the store is missing, locked or inconsistent (exit 6)
        └── DiskFullError       the store's disk is full (exit 7)
"""

from __future__ import annotations

from pathlib import Path


class MirrorError(Exception):
    """Base of every error the tool raises on purpose."""

    exit_code = 1


class InputError(MirrorError):
    exit_code = 2


class RequirementsError(InputError):
    """A requirements line that cannot be used; names the file, the line and the fix."""

    def __init__(self, path: Path | str, lineno: int, problem: str, fix: str = "") -> None:
        self.path = Path(path)
        self.lineno = lineno
        self.problem = problem
        self.fix = fix
        where = f"{self.path}:{lineno}" if lineno else str(self.path)
        message = f"{where}: {problem}"
        if fix:
            message += f" ({fix})"
        super().__init__(message)


class NotYetSupported(RequirementsError):
    """Valid input that this version of the tool cannot mirror yet."""


class ConfigError(InputError):
    pass


class ResolutionError(MirrorError):
    exit_code = 3
    pages: tuple[str, ...] = ()  # the index pages uv read before it failed (for the resolution memo)


class TransportError(MirrorError):
    exit_code = 4


class IntegrityError(MirrorError):
    exit_code = 5


class StoreError(MirrorError):
    exit_code = 6


class DiskFullError(StoreError):
    """The store's file system is full (or over quota): nothing half-written was kept."""

    exit_code = 7
