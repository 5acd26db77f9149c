"""Does a host answer? One HEAD request with a hard time limit, so ``auto`` and TFDS give
up on a dead network within seconds (TFDS alone retries for minutes)."""

from __future__ import annotations

import ipaddress
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

OFFLINE_ENV = "SAFR_JAX_OFFLINE"


def _is_loopback(url: str) -> bool:
  host = urllib.parse.urlsplit(url).hostname or ""
  try:
    return host == "localhost" or ipaddress.ip_address(host).is_loopback
  except ValueError:
    return False


def probe_url(url: str, timeout: float) -> tuple[bool, str]:
  """(reachable, a short reason): does ``url``'s server answer (any HTTP response) within
  ``timeout`` s? A daemon thread asks, so even a hanging DNS lookup cannot hold the caller
  longer. ``SAFR_JAX_OFFLINE=1``: every host but loopback is unreachable at once."""
  if os.environ.get(OFFLINE_ENV, "") not in ("", "0") and not _is_loopback(url):
    return False, f"no network: {OFFLINE_ENV}={os.environ[OFFLINE_ENV]} (not probing {url})"
  result: dict[str, Any] = {}

  def attempt():
    try:
      request = urllib.request.Request(url, method="HEAD")
      with urllib.request.urlopen(request, timeout=timeout) as response:
        result["ok"] = (True, f"HTTP {response.status}")
    except urllib.error.HTTPError as e:
      result["ok"] = (True, f"HTTP {e.code}")
    except Exception as e:  # pylint: disable=broad-except
      result["ok"] = (False, f"{type(e).__name__}: {e}")

  start = time.monotonic()
  thread = threading.Thread(target=attempt, daemon=True, name="safr-probe")
  thread.start()
  thread.join(timeout)
  if "ok" not in result:
    return False, f"no answer from {url} within {timeout:.1f} s"
  ok, why = result["ok"]
  return ok, f"{why} from {url} after {time.monotonic() - start:.2f} s"


def probe_timeout(cfg) -> float:
  """``config.data.download.probe_timeout_s``, capped at 10 s."""
  return min(float(cfg.download.probe_timeout_s), 10.0)
