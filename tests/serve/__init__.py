"""Tests of publishing and the embedded server."""
