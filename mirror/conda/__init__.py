"""The conda side of an app: environment.yml's conda packages solved for each target, stored as
blobs, published as static channels. A plug-in (entry points), so the core never imports py-rattler.

    sync       airgap_mirror.conda.sync.CondaSync      the `conda` snapshot section
    publish    airgap_mirror.conda.publish             conda/CHANNEL/SUBDIR/{packages, repodata.json(.zst)}

A target is an app's Python target seen as conda sees a machine: the subdir (`linux-64`,
`linux-aarch64`, `osx-arm64`, ...) and the virtual packages it has (`__glibc` from the manylinux
tag, `__linux`, `__unix`, `__osx`, `__win`, `__cuda` when [conda] cuda names a version), never the
host's.
"""

from airgap_mirror.conda.targets import DEFAULT_ALIAS, DEFAULTS, SBOM, CondaTarget, channel_folder, channel_url, conda_target

__all__ = ["CondaTarget", "DEFAULTS", "DEFAULT_ALIAS", "SBOM", "channel_folder", "channel_url", "conda_target"]
