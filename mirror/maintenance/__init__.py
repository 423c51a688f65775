"""What is done to a whole store, above every layer it reads: verify, gc and repair (health), and the
snapshots with what the bundle side knows of them (history)."""
