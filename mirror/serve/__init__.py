"""The embedded HTTP server for the published tree: PEP 691 negotiation, HEAD, Range, ETag/304,
gzip, TLS, read-only auth, /health, /metrics, a front page and an access log.

Step 6 of the flow.

What is answered lives in `airgap_mirror.serve.app` (routes, auth, caching headers); this module moves the
bytes: a thread per connection, HTTP/1.1 keep-alive, sendfile for files, TLS when given a
certificate and key. It serves whatever `published/current` points at when each request arrives,
so a republish is picked up without a restart and a request in flight finishes on the tree it
started on. The tree is plain files: nginx or any static host can serve it instead (scripts/nginx.conf).
"""

from airgap_mirror.serve.app import negotiate
from airgap_mirror.serve.threaded import MirrorServer, make_server, tls_context

__all__ = ["MirrorServer", "make_server", "negotiate", "tls_context"]
