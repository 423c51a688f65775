"""Tests of targets, the resolution memo, binary policy."""
