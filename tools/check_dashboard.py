#!/usr/bin/env python3
"""Open a published asv dashboard in headless Chromium and check that its graphs are drawn.

Usage::

    python tools/check_dashboard.py HTML_DIR --bench NAME [--bench NAME ...] --shots DIR

``HTML_DIR`` is what ``asv publish`` wrote (made self-contained by
``tools/asv_offline.py`` where the CDNs are out of reach). It is served with
``python -m http.server`` on a free port of 127.0.0.1, and for each
benchmark ``NAME`` (asv's dotted name, e.g. ``bench_conv2d.Conv2d.time_fastconv``):

1. Chromium loads the graph page ``index.html#NAME`` and dumps its DOM once
   the page's scripts have run (``--virtual-time-budget``). The page must be
   the dashboard, not asv's ``error.html`` (a script failed to load), show
   NAME as its title, and its ``#main-graph`` must hold what flot draws: a
   ``canvas.flot-base`` of non-zero size, at least two numeric y-axis tick
   labels and a legend with one entry per series.
2. Chromium loads a copy of the same page with a probe script added, which
   waits for flot's plot object on ``#main-graph`` and reports, in the DOM,
   the number of series, the finite data points they hold, and how many
   pixels of the plot's canvas have a series' colour. At least one point and
   :data:`MIN_SERIES_PIXELS` such pixels are required: the data really were
   drawn, not only the axes. The copy is deleted afterwards.
3. Chromium takes a screenshot of the graph page into ``DIR/NAME.png`` (for a
   person to look at); it must be a PNG of the requested size.

The summary grid (``index.html``) must list every NAME. Any request the
pages make that the server answers with an error fails the check. Exits 1
with the reasons, 0 after one summary line per benchmark.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path

#: Pixels of the plot canvas that must have a series' colour.
MIN_SERIES_PIXELS = 20
#: Screenshot size (width, height).
WINDOW = (1400, 1000)
#: Milliseconds of page time Chromium grants the scripts before dumping the DOM.
VIRTUAL_TIME_MS = 15000
PROBE_ID = "fastconv-dashboard-probe"
PROBE_PAGE = "_fastconv_probe.html"
PROBE_SCRIPT = "_fastconv_probe.js"

PROBE_JS = r"""
(function () {
  "use strict";
  var started = Date.now();
  function report(result) {
    var pre = document.createElement("pre");
    pre.id = "%(id)s";
    pre.textContent = JSON.stringify(result);
    document.body.appendChild(pre);
  }
  function rgb(color) {
    var m = /rgba?\((\d+),\s*(\d+),\s*(\d+)/.exec(color);
    if (m) return [+m[1], +m[2], +m[3]];
    m = /^#([0-9a-f]{6})$/i.exec(color);
    if (m) { var n = parseInt(m[1], 16); return [(n >> 16) & 255, (n >> 8) & 255, n & 255]; }
    return null;
  }
  function look() {
    var el = window.jQuery("#main-graph"), plot = el.data("plot");
    var series = plot ? plot.getData() : [], points = 0;
    series.forEach(function (s) {
      (s.data || []).forEach(function (p) { if (p && p[1] !== null && isFinite(p[1])) points++; });
    });
    if (points === 0 && Date.now() - started < 12000) { setTimeout(look, 200); return; }
    var result = {series: series.length, points: points, series_pixels: 0, canvas: null,
                  colors: series.map(function (s) { return String(s.color); }),
                  labels: series.map(function (s) { return s.label; })};
    if (!plot) { result.error = "no flot plot object on #main-graph"; report(result); return; }
    var canvas = el.find("canvas.flot-base")[0];
    if (canvas && canvas.width > 0 && canvas.height > 0) {
      var colors = result.colors.map(rgb).filter(Boolean);
      var px = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
      for (var i = 0; i < px.length; i += 4) {
        if (px[i + 3] < 128) continue;
        for (var k = 0; k < colors.length; k++) {
          var c = colors[k];
          if (Math.abs(px[i] - c[0]) + Math.abs(px[i + 1] - c[1]) + Math.abs(px[i + 2] - c[2]) < 30) {
            result.series_pixels++;
            break;
          }
        }
      }
      result.canvas = [canvas.width, canvas.height];
    }
    report(result);
  }
  if (!window.jQuery) { report({error: "jQuery did not load"}); return; }
  window.jQuery(function () { setTimeout(look, 0); });
})();
""" % {"id": PROBE_ID}

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent = tag, dict(attrs), parent
        self.children, self.text = [], []

    @property
    def classes(self):
        return set((self.attrs.get("class") or "").split())

    def iter(self):
        yield self
        for child in self.children:
            yield from child.iter()

    def find_all(self, tag=None, cls=None, id=None):
        return [n for n in self.iter() if (tag is None or n.tag == tag) and (cls is None or cls in n.classes)
                and (id is None or n.attrs.get("id") == id)]

    def text_content(self):
        return "".join(self.text) + "".join(child.text_content() for child in self.children)


class TreeBuilder(HTMLParser):
    """Just enough of a DOM for Chromium's ``--dump-dom`` output."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, None)
        self.current = self.root

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs, self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_startendtag(self, tag, attrs):
        self.current.children.append(Node(tag, attrs, self.current))

    def handle_endtag(self, tag):
        node = self.current
        while node is not self.root and node.tag != tag:
            node = node.parent
        if node is not self.root:
            self.current = node.parent

    def handle_data(self, data):
        self.current.text.append(data)


def parse(html):
    builder = TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


def find_chromium(explicit=None):
    for name in ([explicit] if explicit else ["chromium", "chromium-browser", "google-chrome"]):
        path = shutil.which(name) if name else None
        if path:
            return path
    raise SystemExit("check_dashboard: no Chromium found (Debian: apt-get install -y chromium)")


class Server:
    """``python -m http.server`` on a free port of 127.0.0.1, with its request log."""

    def __init__(self, directory):
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", str(directory)],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()  # "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
        match = re.search(r"port (\d+)", line)
        if not match:
            self.stop()
            raise SystemExit(f"check_dashboard: http.server did not start: {line!r}")
        self.url = f"http://127.0.0.1:{match.group(1)}/"

    def errors(self, unrun_ok=()):
        """Requests answered with a 4xx/5xx status.

        The favicon aside, and the summary-grid data of benchmarks in
        ``unrun_ok`` (published by an earlier run or never run, when only
        a subset of the suite was run: the grid shows them empty).
        """
        self.log.seek(0)
        bad = []
        for line in self.log:
            match = re.search(r'"(?:GET|HEAD) (\S+) [^"]*" (\d{3})', line)
            if not match or match.group(2)[0] not in "45":
                continue
            path = match.group(1).split("?")[0]
            summary = re.fullmatch(r"/graphs/summary/(.+)\.json", path)
            if path.endswith("favicon.ico") or (summary and summary.group(1) in unrun_ok):
                continue
            bad.append(f"{match.group(2)} {path}")
        return bad

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Browser:
    def __init__(self, executable):
        self.executable = executable
        self.profile = tempfile.mkdtemp(prefix="fastconv-chromium-")

    def run(self, url, *args, timeout=120):
        cmd = [self.executable, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--no-default-browser-check", "--hide-scrollbars", f"--user-data-dir={self.profile}",
               f"--virtual-time-budget={VIRTUAL_TIME_MS}", *args, url]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"chromium exited {proc.returncode} on {url}:\n{proc.stderr[-2000:]}")
        return proc.stdout

    def dump_dom(self, url):
        return self.run(url, "--dump-dom")

    def screenshot(self, url, path):
        self.run(url, f"--screenshot={path}", f"--window-size={WINDOW[0]},{WINDOW[1]}")

    def close(self):
        shutil.rmtree(self.profile, ignore_errors=True)


def png_size(path):
    data = Path(path).read_bytes()[:24]
    if len(data) < 24 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


def is_number(text):
    try:
        float(text.strip().replace("\u2212", "-"))
    except ValueError:
        return False
    return True


def check_graph_dom(dom, name):
    """Problems with the graph page of ``name`` (its DOM dump), and facts for the summary."""
    problems, facts = [], {}
    title = (dom.find_all("title") or [None])[0]
    title_text = title.text_content().strip() if title else ""
    if "error" in title_text.lower() or not dom.find_all(id="main-graph"):
        text = " ".join(dom.text_content().split())[:300]
        return [f"not the dashboard (asv's error page? a script failed to load): title {title_text!r}: {text}"], facts
    shown = " ".join(n.text_content().strip() for n in dom.find_all(id="title"))
    if name not in shown:
        problems.append(f"the page's title shows {shown!r}, not {name!r}")
    graph = dom.find_all(id="main-graph")[0]
    canvases = graph.find_all("canvas", cls="flot-base")
    if not canvases:
        problems.append("no <canvas class='flot-base'> in #main-graph: flot drew nothing")
    else:
        size = (int(canvases[0].attrs.get("width") or 0), int(canvases[0].attrs.get("height") or 0))
        facts["canvas"] = size
        if min(size) <= 0:
            problems.append(f"the plot canvas is {size[0]}x{size[1]}")
    ticks = [n.text_content().strip() for axis in graph.find_all(cls="flot-y-axis")
             for n in axis.find_all(cls="tickLabel")]
    facts["yticks"] = ticks
    if sum(is_number(t) for t in ticks) < 2:
        problems.append(f"fewer than two numeric y-axis tick labels: {ticks}")
    legend = [n.text_content().strip() for n in graph.find_all("td", cls="legendLabel")]
    facts["legend"] = legend
    if not legend:
        problems.append("no legend entries in #main-graph")
    return problems, facts


def check_probe(dom, legend):
    nodes = dom.find_all(id=PROBE_ID)
    if not nodes:
        return ["the probe script reported nothing (did the page's scripts run?)"], {}
    result = json.loads(nodes[0].text_content())
    problems = []
    if result.get("error"):
        problems.append(f"probe: {result['error']}")
    if result.get("points", 0) < 1:
        problems.append(f"probe: the plot's {result.get('series', 0)} series hold no finite data point")
    if result.get("series_pixels", 0) < MIN_SERIES_PIXELS:
        problems.append(f"probe: only {result.get('series_pixels', 0)} canvas pixels have a series colour "
                        f"({result.get('colors')}); at least {MIN_SERIES_PIXELS} expected")
    if legend and result.get("series") != len(legend):
        problems.append(f"probe: {result.get('series')} series but {len(legend)} legend entries")
    return problems, result


def main(argv=None):
    parser = argparse.ArgumentParser(description="Check that a published asv dashboard draws its graphs.")
    parser.add_argument("html_dir", type=Path)
    parser.add_argument("--bench", action="append", required=True, help="a benchmark's dotted name (repeat)")
    parser.add_argument("--shots", type=Path, required=True, help="folder for the screenshots")
    parser.add_argument("--chromium", help="the browser executable (default: chromium on PATH)")
    args = parser.parse_args(argv)

    html_dir = args.html_dir.resolve()
    index = html_dir / "index.html"
    if not index.is_file():
        raise SystemExit(f"check_dashboard: {index} not found: run asv publish first")
    published = json.loads((html_dir / "index.json").read_text()).get("benchmarks", {})
    missing = [name for name in args.bench if name not in published]
    if missing:
        raise SystemExit(f"check_dashboard: not in the published index.json: {missing}")
    args.shots.mkdir(parents=True, exist_ok=True)

    (html_dir / PROBE_SCRIPT).write_text(PROBE_JS, encoding="utf-8")
    page = index.read_text(encoding="utf-8")
    if "</body>" not in page:
        raise SystemExit("check_dashboard: index.html has no </body>")
    (html_dir / PROBE_PAGE).write_text(page.replace("</body>", f'<script src="{PROBE_SCRIPT}"></script></body>'),
                                       encoding="utf-8")
    server = Server(html_dir)
    browser = Browser(find_chromium(args.chromium))
    failures, lines = [], []
    try:
        print(f"check_dashboard: serving {html_dir} at {server.url}")
        grid = parse(browser.dump_dom(server.url + "index.html"))
        links = {n.attrs.get("href") for n in grid.find_all("a")}
        for name in args.bench:
            if f"#{name}" not in links:
                failures.append(f"summary grid: no link to #{name}")
        for name in args.bench:
            started = time.monotonic()
            url = f"{server.url}index.html#{name}"
            problems, facts = check_graph_dom(parse(browser.dump_dom(url)), name)
            if not problems:
                more, probe = check_probe(parse(browser.dump_dom(f"{server.url}{PROBE_PAGE}#{name}")),
                                          facts.get("legend"))
                problems += more
                facts.update(probe)
            shot = args.shots / f"{name}.png"
            browser.screenshot(url, shot)
            if png_size(shot) != WINDOW:
                problems.append(f"screenshot {shot} is not a {WINDOW[0]}x{WINDOW[1]} PNG (got {png_size(shot)})")
            if problems:
                failures += [f"{name}: {p}" for p in problems]
                continue
            ticks = facts["yticks"]
            lines.append(f"{name}: {facts['series']} series, {facts['points']} points, "
                         f"{facts['series_pixels']} series-coloured pixels on a {facts['canvas'][0]}x"
                         f"{facts['canvas'][1]} canvas, y ticks {ticks[0]} .. {ticks[-1]}, "
                         f"{len(facts['legend'])} legend entries; screenshot {shot} "
                         f"({time.monotonic() - started:.1f} s)")
        failures += [f"HTTP {e}" for e in server.errors(unrun_ok=set(published) - set(args.bench))]
    finally:
        browser.close()
        server.stop()
        for name in (PROBE_PAGE, PROBE_SCRIPT):
            (html_dir / name).unlink(missing_ok=True)
    for line in lines:
        print(f"check_dashboard: ok {line}")
    if failures:
        print(f"check_dashboard: FAILED ({len(failures)}):", file=sys.stderr)
        for line in failures:
            print(f"  {line}", file=sys.stderr)
        return 1
    print(f"check_dashboard: all {len(args.bench)} graphs drawn")
    return 0


if __name__ == "__main__":
    sys.exit(main())
