"""The bundle exception tree: all are IntegrityError (bytes not what was promised) but KeyFormatError.

    MirrorError
    ├── InputError
    │   └── KeyFormatError      a key file that is not a minisign key, or a wrong password
    │   └── BaseMissingError    a delta whose base snapshot this store does not have
    └── IntegrityError
        ├── SignatureError      unsigned, untrusted or not matching
        ├── BundleFormatError   a stream, member or manifest that is not what a bundle must be
        └── ReplayError         a bundle not newer than one already imported from the same key
"""

from __future__ import annotations

from airgap_mirror.errors import InputError, IntegrityError


class KeyFormatError(InputError):
    pass


class SignatureError(IntegrityError):
    pass


class BaseMissingError(InputError):
    pass


class BundleFormatError(IntegrityError):
    pass


class ReplayError(IntegrityError):
    pass
