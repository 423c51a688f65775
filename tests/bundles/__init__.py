"""Tests of signed bundles."""
