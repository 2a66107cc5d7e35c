#!/usr/bin/env python3
"""Make a published asv dashboard load its JavaScript and CSS from its own folder.

``asv publish`` (asv 0.6) writes an ``index.html`` that loads jQuery, flot,
Bootstrap, stupidtable and blueimp-md5 from public CDNs, and sends the
browser to ``error.html`` ("One or more external (JavaScript) dependencies
... failed to load") when one of them cannot be fetched. On a machine
without internet access, such as CI here, no graph is ever drawn.

This script copies the same libraries from Debian's packages into
``<html_dir>/vendor/`` and points every ``<script>``/``<link>`` tag of the
published HTML at those copies, dropping the CDN-only ``integrity`` and
``crossorigin`` attributes (the Debian files are the same libraries, not the
same bytes). Install them with::

    apt-get install -y libjs-jquery libghc-js-flot-data libjs-bootstrap \\
        libjs-jquery-stupidtable node-blueimp-md5

flot is exactly the 0.8.3 asv asks for (``libghc-js-flot-data``); jQuery
(3.6 for 3.3.1), Bootstrap (3.4.1 for 3.1.1) and stupidtable (1.1.3 for
1.0.1) are later releases of the same major version. Debian has no
``flot-orderbars``: without it the graphs that put a parameter on the x
axis draw their bars on top of one another instead of side by side; every
other view is unchanged. Any other external reference that this script
does not know is an error, so a new asv release cannot slip a CDN
dependency past the dashboard check.

Usage: ``python tools/asv_offline.py HTML_DIR``
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

#: (pattern matched against the URL, Debian file, where it goes under vendor/, Debian package)
LIBRARIES = [
    (r"/jquery-3\.[\d.]+(\.min)?\.js$", "/usr/share/javascript/jquery/jquery.min.js",
     "jquery.min.js", "libjs-jquery"),
    (r"/flot/0\.8\.3/jquery\.flot\.min\.js$", "/usr/share/haskell-js-flot/jquery.flot.min.js",
     "flot/jquery.flot.min.js", "libghc-js-flot-data"),
    (r"/flot/0\.8\.3/jquery\.flot\.time\.min\.js$", "/usr/share/haskell-js-flot/jquery.flot.time.min.js",
     "flot/jquery.flot.time.min.js", "libghc-js-flot-data"),
    (r"/flot/0\.8\.3/jquery\.flot\.selection\.min\.js$",
     "/usr/share/haskell-js-flot/jquery.flot.selection.min.js",
     "flot/jquery.flot.selection.min.js", "libghc-js-flot-data"),
    (r"/flot/0\.8\.3/jquery\.flot\.categories\.min\.js$",
     "/usr/share/haskell-js-flot/jquery.flot.categories.min.js",
     "flot/jquery.flot.categories.min.js", "libghc-js-flot-data"),
    (r"/stupidtable(\.min)?\.js$", "/usr/share/javascript/jquery-stupidtable/stupidtable.min.js",
     "stupidtable.min.js", "libjs-jquery-stupidtable"),
    (r"/md5(\.min)?\.js$", "/usr/share/javascript/blueimp-md5/md5.min.js",
     "md5.min.js", "node-blueimp-md5"),
    (r"/bootstrap@3\.[\d.]+/dist/js/bootstrap(\.min)?\.js$",
     "/usr/share/javascript/bootstrap/js/bootstrap.min.js", "bootstrap/js/bootstrap.min.js", "libjs-bootstrap"),
    (r"/bootstrap@3\.[\d.]+/dist/css/bootstrap(\.min)?\.css$",
     "/usr/share/javascript/bootstrap/css/bootstrap.min.css", "bootstrap/css/bootstrap.min.css",
     "libjs-bootstrap"),
]
#: Bootstrap's CSS loads its icon font from ../fonts/.
EXTRA_DIRS = [("/usr/share/javascript/bootstrap/fonts", "bootstrap/fonts", "libjs-bootstrap")]
#: External scripts with no Debian copy, left out on purpose (see the module docstring).
OPTIONAL = [r"/jquery\.flot\.orderBars\.js$"]

TAG = re.compile(r"<(script|link)\b[^>]*?\b(src|href)=\"(https?://[^\"]+)\"[^>]*>(\s*</script>)?",
                 re.IGNORECASE | re.DOTALL)


def localize(html_dir: Path) -> list[str]:
    """Rewrite every HTML file of ``html_dir``; return what was done, one line each."""
    vendor = html_dir / "vendor"
    done, errors = [], []
    pages = sorted(html_dir.glob("*.html"))
    if not (html_dir / "index.html").is_file():
        raise SystemExit(f"asv_offline: {html_dir}/index.html not found: run `asv publish` first")

    def replace(match: re.Match) -> str:
        kind, url = match.group(1).lower(), match.group(3)
        if kind == "link" and "stylesheet" not in match.group(0).lower():
            return match.group(0)  # e.g. an RSS <link>: not loaded by the page
        for pattern, source, target, package in LIBRARIES:
            if re.search(pattern, url):
                if not Path(source).is_file():
                    errors.append(f"{url}: {source} is missing (apt-get install -y {package})")
                    return match.group(0)
                (vendor / target).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, vendor / target)
                done.append(f"{url} -> vendor/{target}")
                if kind == "script":
                    return f'<script src="vendor/{target}" onerror="js_load_failure()"></script>'
                return f'<link rel="stylesheet" href="vendor/{target}">'
        if any(re.search(pattern, url) for pattern in OPTIONAL):
            done.append(f"{url} -> left out (no Debian package; optional)")
            return f"<!-- left out by tools/asv_offline.py (no offline copy): {url} -->"
        errors.append(f"{url}: no offline copy known; add it to LIBRARIES in tools/asv_offline.py")
        return match.group(0)

    for page in pages:
        text = page.read_text(encoding="utf-8")
        new = TAG.sub(replace, text)
        if new != text:
            page.write_text(new, encoding="utf-8")
    for source, target, package in EXTRA_DIRS:
        if (vendor / "bootstrap").exists():
            if not Path(source).is_dir():
                errors.append(f"{source} is missing (apt-get install -y {package})")
            else:
                shutil.copytree(source, vendor / target, dirs_exist_ok=True)
    if errors:
        raise SystemExit("asv_offline: the dashboard would still need the network:\n  " + "\n  ".join(errors))
    return done


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html_dir", type=Path, help="the folder asv publish wrote (html_dir of asv.conf.json)")
    args = parser.parse_args(argv)
    for line in localize(args.html_dir):
        print(f"asv_offline: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
