"""Resolution for a target with uv, and the choice of files per pinned version.

Step 2 of the flow. Also here: targets (the machines inside the gap), memo (resolutions reused while
their index pages are unchanged), upstream (index pages: yanked, requires-python), lockfile
(requirements.lock).


`uv_compile` is the only place uv runs. It is run with no ambient configuration: no uv.toml,
no UV_* or PIP_* variables, no pip.conf (uv ignores it anyway), no Python downloads, so the
result depends on the app, the target and the named indexes alone.
"""

from airgap_mirror.resolve.pins import Pin, PinnedFile, pick_files, select_files
from airgap_mirror.resolve.uv import IndexConfig, UvResolution, clean_env, did_you_mean, uv_binary, uv_compile, uv_env, uv_version

__all__ = ["IndexConfig", "Pin", "PinnedFile", "UvResolution", "clean_env", "did_you_mean", "pick_files", "select_files", "uv_binary", "uv_compile", "uv_env", "uv_version"]
