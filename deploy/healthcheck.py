"""Docker's HEALTHCHECK: GET /healthz on this container, with a Host the service accepts."""

import os
import sys
import urllib.request

port = os.environ.get("BIND", "0.0.0.0:8000").rsplit(":", 1)[1]
host = os.environ.get("ALLOWED_HOSTS", "localhost").split(",")[0].strip()
request = urllib.request.Request(f"http://127.0.0.1:{port}/healthz", headers={"Host": host})
try:
    urllib.request.urlopen(request, timeout=4)
except Exception as exc:  # noqa: BLE001 - any failure is "unhealthy"; say which.
    sys.exit(f"unhealthy: {exc}")
