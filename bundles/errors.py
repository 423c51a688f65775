"""The bundle exception tree: all are IntegrityError (bytes not what was promised) but KeyFormatError.

    MirrorError
    ├── InputError
    │   └── KeyFormatError      a key file that is not a minisign key, or a wrong password
    └── IntegrityError
        └── SignatureError      unsigned, untrusted or not matching
"""

from __future__ import annotations

from mirror.errors import InputError, IntegrityError


class KeyFormatError(InputError):
    pass


class SignatureError(IntegrityError):
    pass
