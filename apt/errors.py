"""Errors of the APT side, as branches of the mirror's exception tree.

    MirrorError
    ├── InputError
    │   └── RequirementsError
    │       └── AptfileError        an Aptfile / packages.txt line (file, line, fix)
    ├── ResolutionError
    │   └── UnsatisfiableError      a package or dependency the suites cannot provide
    └── IntegrityError
        └── ArchiveSignatureError   an upstream Release that is unsigned or badly signed
"""

from __future__ import annotations

from airgap_mirror.errors import IntegrityError, RequirementsError, ResolutionError

__all__ = ["AptfileError", "UnsatisfiableError", "ArchiveSignatureError"]


class AptfileError(RequirementsError):
    """A line of an Aptfile or packages.txt that cannot be used."""


class UnsatisfiableError(ResolutionError):
    """Something asked for (directly or through a dependency) that no searched suite provides."""


class ArchiveSignatureError(IntegrityError):
    """An upstream archive whose Release file is not signed by a trusted key."""
