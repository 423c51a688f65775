"""Tests of the store: operations, snapshots, crash safety."""
