"""Signed bundles: keys, create, verify and import (the air-gap crossing)."""

# zstd level of a bundle. What a bundle carries is compressed already (wheels, sdists, .debs, conda
# packages): on 2 GB of the corpus's files level 3 saved 1.3% of the bytes and level -1 (zstd's
# fastest kind, no entropy coding of literals) 0.9%, for 2.4x less CPU (scripts/bench bundle prints
# each level's time and size on real wheels). `--level 3` or more for the last few percent.
DEFAULT_LEVEL = -1
MIN_LEVEL, MAX_LEVEL = -7, 19
