"""One sync: app folders → resolution per target → verified fetch → catalog → snapshot.

The steps, each a module (pip's collect / evaluate / choose split is the model): `load` reads the app
folders; `jobs` collects the resolutions to make and answers each (a lock as it is, the memo, or uv),
a verdict per job; `checks` evaluates them against the index pages; `early` and `downloads` fetch
what was chosen; `assemble` makes the snapshot; `run` puts them in order, passing one state.
"""

from airgap_mirror.interfaces import Reporter
from airgap_mirror.sync.options import SNAPSHOT_FORMAT, AppResult, SyncOptions, SyncResult
from airgap_mirror.sync.run import run_sync

__all__ = ["SNAPSHOT_FORMAT", "AppResult", "Reporter", "SyncOptions", "SyncResult", "run_sync"]
