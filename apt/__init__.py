"""The APT side: Aptfiles, upstream Debian archives, the dependency closure, a signed repository."""
