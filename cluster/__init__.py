"""Where workers run: sysfs topology, placement, the Ray connection, worker actors, local clusters.

Ray reads ``RAY_AUTH_MODE`` when it is imported, and a driver joining a token-protected
cluster without it fails after a 20 s wait with ``InvalidAuthToken``; so token
authentication is switched on here, before any module of this package imports ray.
"""

import os

os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
