r"""The explanation page in a real browser: headless Chromium at 1280 px (a
desktop) and 390 px (a phone), failing on a page wider than the screen or an
image that did not load.

    apt-get install -y chromium                       # Debian's package, once
    python -m safr_jax.explain --workdir=RUN --out=/tmp/page
    python benchmarks/check_page.py /tmp/page/index.html --out=/tmp/page_check

Drives Chromium over the DevTools protocol (a local websocket, Python's
standard library only). Per width it emulates the screen (390 px: a phone,
``mobile`` on, so a page without ``<meta name="viewport">`` is laid out at
980 px as a phone would), loads the page, waits for its images, and checks:

- horizontal overflow: ``document.documentElement.scrollWidth`` wider than the
  screen (or than the visible width beside a scroll bar); the elements that
  stick out are named (those inside a box that scrolls itself are fine);
- broken images: an ``<img>`` whose ``naturalWidth`` is 0 (missing file, bad
  data);

overflow as the page opens and again with every ``<details>`` open. Prints
one line per problem (``390px: ...``) and exits 1 when there is one;
otherwise one ``ok`` line per width, with the page's height as it opens and
its px per example (from the first ``<h2 id="ex-…">`` on). Saves
``page_<width>.png`` (the whole page, cut at ``--max_height`` CSS px) and
``page_<width>_screen.png`` (the first screenful) in ``--out``. Exit 2: no Chromium, or it did not answer.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import pathlib
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse

# (width, height, mobile) in CSS px: a desktop and an iPhone 12-15 sized phone.
SCREENS = {1280: (1280, 800, False), 390: (390, 844, True)}
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Runs in the page once it has loaded; returns what the checks need.
_MEASURE = r"""
(async () => {
  if (%(open)s) document.querySelectorAll('details').forEach(d => { d.open = true; });
  await Promise.all([...document.images].map(img => img.complete ? null :
      new Promise(done => { img.addEventListener('load', done);
                            img.addEventListener('error', done); })));
  const doc = document.documentElement;
  const limit = Math.min(%(width)d, doc.clientWidth);
  const clips = el => { for (let a = el.parentElement; a; a = a.parentElement) {
      if (a === document.body || a === doc) return false;
      if (getComputedStyle(a).overflowX !== 'visible') return true; } return false; };
  const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
      (el.classList.length ? '.' + [...el.classList].join('.') : '');
  // What sticks out: the outermost box past the edge (a table), or a box
  // whose own content runs past it (a long line in a <pre>).
  const wide = [], over = new Set(), x = window.scrollX;
  const past = right => right > limit + 0.5;
  if (doc.scrollWidth > limit) {
    for (const el of document.body.querySelectorAll('*')) {  // parents first
      if (clips(el)) continue;
      const box = el.getBoundingClientRect();
      if (past(box.right + x)) {
        over.add(el);
        if (!over.has(el.parentElement)) wide.push({el, right: box.right + x});
      } else if (el.clientWidth && past(box.left + x + el.scrollWidth) &&
                 getComputedStyle(el).overflowX === 'visible' &&
                 ![...el.children].some(c => past(c.getBoundingClientRect().right + x))) {
        wide.push({el, right: box.left + x + el.scrollWidth});
      }
    }
  }
  const counts = {};
  for (const w of wide) {
    const key = name(w.el);
    counts[key] = counts[key] || {n: 0, right: 0};
    counts[key].n += 1; counts[key].right = Math.max(counts[key].right, w.right);
  }
  return {
    scrollWidth: doc.scrollWidth, clientWidth: doc.clientWidth,
    innerWidth: window.innerWidth, height: doc.scrollHeight,
    viewportMeta: !!document.querySelector('meta[name=viewport]'),
    images: document.images.length,
    examples: document.querySelectorAll('h2[id^="ex-"]').length,
    examplesFrom: (document.querySelector('h2[id^="ex-"]') || doc).getBoundingClientRect().top
        + window.scrollY,
    broken: [...document.images].filter(i => i.naturalWidth === 0).map(
        i => i.getAttribute('data-file') || i.getAttribute('alt') ||
             (i.getAttribute('src') || '').slice(0, 60)),
    wide: Object.entries(counts).sort((a, b) => b[1].right - a[1].right).slice(0, 6)
        .map(([k, v]) => `${k} x${v.n} (to ${Math.round(v.right)} px)`),
  };
})()
"""


class ChromiumError(Exception):
  """Chromium missing, not starting, or not answering."""


class _WebSocket:
  """Just enough of RFC 6455 for the DevTools protocol: text frames, client
  side (masked), no extensions."""

  def __init__(self, url: str, timeout: float):
    u = urllib.parse.urlsplit(url)
    self._sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    self._sock.sendall((f"GET {u.path} HTTP/1.1\r\nHost: {u.netloc}\r\n"
                        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                        ).encode())
    head = b""
    while b"\r\n\r\n" not in head:
      chunk = self._sock.recv(4096)
      if not chunk:
        raise ChromiumError("the DevTools websocket closed during the handshake")
      head += chunk
    if b" 101 " not in head.split(b"\r\n", 1)[0]:
      raise ChromiumError(f"DevTools websocket refused: {head.splitlines()[0]!r}")
    self._buffer = head.split(b"\r\n\r\n", 1)[1]

  def _read(self, n: int) -> bytes:
    while len(self._buffer) < n:
      chunk = self._sock.recv(1 << 20)
      if not chunk:
        raise ChromiumError("Chromium closed the DevTools websocket")
      self._buffer += chunk
    out, self._buffer = self._buffer[:n], self._buffer[n:]
    return out

  def _frame(self, opcode: int, payload: bytes) -> None:
    n = len(payload)
    size = (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n)
            if n < 1 << 16 else bytes([0x80 | 127]) + struct.pack("!Q", n))
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    self._sock.sendall(bytes([0x80 | opcode]) + size + mask + body)

  def send(self, text: str) -> None:
    self._frame(0x1, text.encode())

  def recv(self) -> str:
    message = b""
    while True:
      b0, b1 = self._read(2)
      n = b1 & 0x7F
      if n == 126:
        n = struct.unpack("!H", self._read(2))[0]
      elif n == 127:
        n = struct.unpack("!Q", self._read(8))[0]
      payload = self._read(n)  # the server does not mask
      opcode = b0 & 0x0F
      if opcode == 0x9:      # ping
        self._frame(0xA, payload)
        continue
      if opcode == 0x8:
        raise ChromiumError("Chromium closed the DevTools websocket")
      message += payload
      if b0 & 0x80:          # the final fragment
        return message.decode()

  def close(self) -> None:
    self._sock.close()


class DevTools:
  """One page of a headless Chromium, driven by DevTools protocol calls."""

  def __init__(self, browser: str, timeout: float):
    self.timeout = timeout
    self._profile = tempfile.mkdtemp(prefix="check_page_")
    args = [browser, "--headless", "--remote-debugging-port=0",
            f"--user-data-dir={self._profile}", "--no-first-run", "--no-default-browser-check",
            "--disable-gpu", "--disable-crash-reporter", "--hide-scrollbars", "--mute-audio",
            "about:blank"]
    if os.geteuid() == 0:
      args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
    self._proc = self._socket = None
    self._id = 0
    self._events: list[dict] = []
    try:
      self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    start_new_session=True)
      self._socket = _WebSocket(self._page_socket(), timeout)
    except BaseException:
      self.close()  # a browser that did not answer is not left running
      raise

  def _page_socket(self) -> str:
    port_file = pathlib.Path(self._profile) / "DevToolsActivePort"
    deadline = time.monotonic() + self.timeout
    while time.monotonic() < deadline:
      if self._proc.poll() is not None:
        raise ChromiumError(f"Chromium exited ({self._proc.returncode}): "
                            + self._proc.stderr.read().decode(errors="replace")[-300:])
      if port_file.exists() and port_file.read_text().count("\n") >= 1:
        port = int(port_file.read_text().split()[0])
        try:
          conn = http.client.HTTPConnection("127.0.0.1", port, timeout=self.timeout)
          conn.request("GET", "/json/list")
          pages = [t for t in json.loads(conn.getresponse().read())
                   if t.get("type") == "page"]
          conn.close()
          if pages:
            return pages[0]["webSocketDebuggerUrl"]
        except (OSError, ValueError):
          pass
      time.sleep(0.05)
    raise ChromiumError(f"Chromium did not open its DevTools port in {self.timeout:.0f} s")

  def call(self, method: str, **params) -> dict:
    self._id += 1
    self._socket.send(json.dumps({"id": self._id, "method": method, "params": params}))
    deadline = time.monotonic() + self.timeout
    while time.monotonic() < deadline:
      message = json.loads(self._socket.recv())
      if message.get("id") == self._id:
        if "error" in message:
          raise ChromiumError(f"{method}: {message['error'].get('message')}")
        return message.get("result", {})
      self._events.append(message)
    raise ChromiumError(f"{method}: no answer in {self.timeout:.0f} s")

  def wait_for(self, event: str) -> None:
    deadline = time.monotonic() + self.timeout
    while time.monotonic() < deadline:
      while self._events:
        if self._events.pop(0).get("method") == event:
          return
      self._events.append(json.loads(self._socket.recv()))
    raise ChromiumError(f"no {event} in {self.timeout:.0f} s")

  def close(self) -> None:
    try:
      if self._socket is not None:
        self._socket.close()
    finally:
      if self._proc is not None and self._proc.poll() is None:
        os.killpg(self._proc.pid, signal.SIGTERM)  # our own session: Chromium's children
        try:
          self._proc.wait(10)
        except subprocess.TimeoutExpired:
          os.killpg(self._proc.pid, signal.SIGKILL)
      shutil.rmtree(self._profile, ignore_errors=True)


def _load(tools: DevTools, url: str, w: int, h: int, mobile: bool) -> dict:
  """Loads ``url`` on a ``w`` x ``h`` screen; the page's measurements."""
  tools.call("Emulation.setDeviceMetricsOverride", width=w, height=h,
             deviceScaleFactor=1, mobile=mobile)
  tools.call("Page.navigate", url=url)
  tools.wait_for("Page.loadEventFired")
  return _measure(tools, w)


def _measure(tools: DevTools, w: int, open_details: bool = False) -> dict:
  result = tools.call("Runtime.evaluate",
                      expression=_MEASURE % {"width": w, "open": str(open_details).lower()},
                      awaitPromise=True, returnByValue=True)
  if "exceptionDetails" in result:
    raise ChromiumError(f"the measuring script failed: {result['exceptionDetails']}")
  return result["result"]["value"]


def _screenshots(tools: DevTools, m: dict, w: int, h: int, stem: pathlib.Path,
                 max_height: int) -> None:
  """``stem.png``: the page (cut at ``max_height``); ``stem_screen.png``: the
  first screenful. As wide as the page, so overflow shows."""
  for suffix, height in (("_screen", h), ("", min(m["height"], max_height))):
    shot = tools.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                      clip={"x": 0, "y": 0, "width": max(w, m["scrollWidth"]),
                            "height": height, "scale": 1})
    stem.with_name(stem.name + suffix + ".png").write_bytes(base64.b64decode(shot["data"]))


def _overflow(m: dict, w: int, where: str = "") -> list[str]:
  limit = min(w, m["clientWidth"])
  if m["scrollWidth"] <= limit:
    return []
  return [f"horizontal overflow{where}: the page is {m['scrollWidth']} px wide on a "
          f"{limit} px screen; sticking out: " + (", ".join(m["wide"]) or "(nothing named)")]


def check(tools: DevTools, url: str, width: int, out: pathlib.Path,
          max_height: int) -> tuple[list[str], dict]:
  """Loads ``url`` on a ``width`` px screen; returns (problems, measurements)
  and saves ``page_<width>[_screen].png`` in ``out``.

  A phone lays a page without ``<meta name=viewport>`` out 980 px wide and
  shrinks it: that is one problem, and the page is then measured again as if
  it had ``width=device-width`` (``page_<width>_device_width*.png``), to name
  what would still stick out.
  """
  w, h, mobile = SCREENS.get(width, (width, 800, width < 600))
  m = _load(tools, url, w, h, mobile)
  _screenshots(tools, m, w, h, out / f"page_{width}", max_height)
  problems = [f"broken image: {b}" for b in m["broken"]]
  if mobile and not m["viewportMeta"] and m["innerWidth"] > w:
    problems.append(f"no <meta name=viewport>: a phone lays the page out "
                    f"{m['innerWidth']} px wide and shrinks it to {w / m['innerWidth']:.2f}")
    m = _load(tools, url, w, h, False)
    _screenshots(tools, m, w, h, out / f"page_{width}_device_width", max_height)
    problems += _overflow(m, w, " (laid out at device width)")
  else:
    problems += _overflow(m, w)
  if not _overflow(m, w):  # last: the screenshots show them shut
    problems += _overflow(_measure(tools, w, open_details=True), w,
                          " with every <details> open")
  return problems, m


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("page", help="an explain output folder or its index.html")
  parser.add_argument("--out", default="page_check", help="folder for the screenshots")
  parser.add_argument("--widths", default="1280,390", help="screen widths, CSS px")
  parser.add_argument("--browser", default=None, help="Chromium's executable "
                      f"(default: the first of {', '.join(BROWSERS)} on PATH)")
  parser.add_argument("--max_height", type=int, default=12000,
                      help="full-page screenshots are cut at this height (CSS px)")
  parser.add_argument("--timeout", type=float, default=60, help="seconds per browser step")
  args = parser.parse_args(argv)
  start = time.monotonic()
  page = pathlib.Path(args.page)
  page = page / "index.html" if page.is_dir() else page
  if not page.is_file():
    print(f"check_page: no page at {page} (give an explain --out folder or its index.html)")
    return 2
  browser = args.browser or next(filter(None, map(shutil.which, BROWSERS)), None)
  if not browser:
    print("check_page: no Chromium on PATH; install it (Debian: apt-get install -y chromium) "
          "or pass --browser")
    return 2
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  failed = False
  try:
    tools = DevTools(browser, args.timeout)
    try:
      tools.call("Page.enable")
      for width in (int(w) for w in args.widths.split(",")):
        problems, m = check(tools, page.resolve().as_uri(), width, out, args.max_height)
        for p in problems:
          print(f"{width}px: {p}")
        failed |= bool(problems)
        if not problems:
          each = (f", {(m['height'] - m['examplesFrom']) / m['examples']:.0f} per example"
                  if m["examples"] else "")
          print(f"{width}px: ok: {m['scrollWidth']} px wide, {m['images']} images, "
                f"page {m['height']} px tall{each}")
    finally:
      tools.close()
  except (ChromiumError, OSError) as e:
    print(f"check_page: {e}")
    return 2
  print(f"screenshots in {out}/ ({time.monotonic() - start:.1f} s)")
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
