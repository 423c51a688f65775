"""Publishing a snapshot: a complete static tree built aside, then switched in with one rename.

Step 5 of the flow. Also here: simple (PEP 503/691 pages), lockview (an app's lock and advice from a
snapshot).


    published/trees/<snapshot-id>.<n>/   a finished tree (files hard-linked from the store)
    published/current -> trees/...       the one symlink clients follow; replaced atomically

Plug-ins (the APT side) add their part of the tree as `airgap_mirror.publishers` (airgap_mirror.interfaces),
so this module needs to know nothing of them.
"""

from airgap_mirror.publish.tree import (
    base_url,
    current_tree,
    hold_tree,
    link_or_copy,
    publish,
    published_snapshot,
    served_pylock,
    tree_snapshot,
    up_to_date,
)

__all__ = ["base_url", "current_tree", "hold_tree", "link_or_copy", "publish", "published_snapshot", "served_pylock", "tree_snapshot", "up_to_date"]
