#!/usr/bin/env python3
"""canon docs in a real browser (issue 17 item 4): Debian's Chromium driven
through ChromeDriver's WebDriver API, with the standard library only.

It publishes the sample company, writes the catalog site from a copy of the
project whose definitions and one data file name carry an HTML payload
(`<img src=x onerror=alert(1)>`), then checks in headless Chromium that:
the index loads without console errors; the search filters the metrics
(typed, and given as ?q=); a metric page draws its chart (one bar per
published period) and its lineage diagram; no payload became markup (no
<img> anywhere, the text shown as text); and writes screenshots.

Usage: .ci/docs_browser_test.py CANON_BINARY OUT_DIR
"""

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

PAYLOAD = "<img src=x onerror=alert(1)>"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*cmd, **kw):
    print("$", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Driver:
    """The few WebDriver calls the checks need."""

    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"
        caps = {
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": "/usr/bin/chromium",
                        "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                                 "--disable-dev-shm-usage", "--window-size=1280,1600"],
                    },
                    "goog:loggingPrefs": {"browser": "ALL"},
                }
            }
        }
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read() or b'{"value": null}')["value"]

    def s(self, method, path, body=None):
        return self.call(method, f"/session/{self.session}{path}", body)

    def go(self, url):
        self.s("POST", "/url", {"url": url})

    def js(self, script, *args):
        return self.s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def type_into(self, css, text):
        el = self.s("POST", "/element", {"using": "css selector", "value": css})
        key = next(iter(el.values()))
        self.s("POST", f"/element/{key}/clear", {})
        self.s("POST", f"/element/{key}/value", {"text": text})

    def logs(self):
        return self.s("POST", "/se/log", {"type": "browser"})

    def screenshot(self, path):
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.s("GET", "/screenshot")))

    def quit(self):
        try:
            self.s("DELETE", "")
        except Exception:
            pass


def check(cond, what):
    if not cond:
        raise SystemExit(f"FAILED: {what}")
    print(f"ok: {what}", flush=True)


def main():
    canon, out = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    os.makedirs(out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="canon-docs-")
    try:
        project = os.path.join(work, "project")
        os.makedirs(project)
        for f in ["canon.yaml", "signoffs.yaml"]:
            shutil.copy(os.path.join(ROOT, f), project)
        for d in ["models", "metrics"]:
            shutil.copytree(os.path.join(ROOT, d), os.path.join(project, d))
        data = os.path.join(work, "data")
        shutil.copytree(os.path.join(ROOT, "sample_data"), data)
        # The payload in definitions (a draft metric's owner and label; an
        # exclusion's reason) and in a data file's name, which the pages show.
        sales = os.path.join(project, "metrics", "sales.yaml")
        text = open(sales).read()
        i = text.index("  - name: new_business_share")
        tail = text[i:].replace("owner: Sales Operations", f"owner: \"{PAYLOAD}\"", 1)
        open(sales, "w").write(text[:i] + tail)
        excl = os.path.join(project, "metrics", "exclusions.yaml")
        lines = open(excl).read().split("\n")
        at = next(i for i, l in enumerate(lines) if l.strip().startswith("reason: The deal has no amount"))
        lines[at] = f"    reason: \"{PAYLOAD} The deal has no amount (null).\""
        open(excl, "w").write("\n".join(lines))
        # bookings reads missing_amount: its sign-off is re-approved.
        run(canon, "signoff", "--all", "--by", "docs test", "--project", project)
        opp = os.path.join(data, "crm", "opportunity")
        os.rename(os.path.join(opp, "part-00000.parquet"), os.path.join(opp, f"{PAYLOAD}.parquet"))
        publication = os.path.join(work, "published")
        run(canon, "publish", "--out", publication, "--project", project, "--data", data)
        site = os.path.join(out, "site")
        if os.path.exists(site):
            shutil.rmtree(site)
        run(canon, "docs", "--out", site, "--publication", publication,
            "--project", project, "--data", data)

        port = free_port()
        driver_log = open(os.path.join(out, "chromedriver.log"), "w")
        chromedriver = subprocess.Popen(["chromedriver", f"--port={port}"],
                                        stdout=driver_log, stderr=subprocess.STDOUT)
        try:
            for _ in range(100):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=1)
                    break
                except Exception:
                    time.sleep(0.1)
            d = Driver(port)
            try:
                index = "file://" + os.path.join(site, "index.html")
                d.go(index)
                total = d.js("return document.querySelectorAll('li.metric').length")
                check(total >= 20, f"the index lists every metric ({total})")
                d.type_into("#search", "arr")
                shown = d.js("return Array.from(document.querySelectorAll('li.metric'))"
                             ".filter(li => !li.classList.contains('hidden')).map(li => li.textContent)")
                check(0 < len(shown) < total and all("arr" in s.lower() for s in shown),
                      f"typing `arr` keeps the {len(shown)} metrics that mention it")
                check(d.js("return document.getElementById('count').textContent")
                      == f"{len(shown)} of {total} metrics", "the count follows the search")
                d.go(index + "?q=certified%20revenue")
                shown_q = d.js("return document.querySelectorAll('li.metric:not(.hidden)').length")
                check(0 < shown_q < total, f"?q= searches on load ({shown_q} shown)")
                d.screenshot(os.path.join(out, "docs-index.png"))

                d.go("file://" + os.path.join(site, "metrics", "bookings.html"))
                bars = d.js("return document.querySelectorAll('svg.chart rect.bar').length")
                periods = len(json.load(open(os.path.join(publication, "manifest.json")))["periods"])
                check(bars == periods, f"the chart draws one bar per published period ({bars})")
                nodes = d.js("return document.querySelectorAll('svg.lineage g.node').length")
                check(nodes > 10, f"the lineage diagram draws its nodes ({nodes})")
                width = d.js("return document.querySelector('svg.lineage').getBoundingClientRect().width")
                check(width > 100, f"the diagram is laid out ({width:.0f} px wide)")
                check(d.js("return document.querySelectorAll('img').length") == 0,
                      "no payload became an <img>")
                check(PAYLOAD in d.js("return document.body.innerText"),
                      "the payload is shown as text (in the exclusion's reason and the file name)")
                d.screenshot(os.path.join(out, "docs-bookings.png"))

                d.go("file://" + os.path.join(site, "metrics", "new_business_share.html"))
                check(d.js("return document.querySelectorAll('img').length") == 0
                      and PAYLOAD in d.js("return document.body.innerText"),
                      "the owner's payload is text on its metric page")
                errors = [e for e in d.logs() if e.get("level") == "SEVERE"]
                check(not errors, f"no console errors ({errors})")
            finally:
                d.quit()
        finally:
            chromedriver.terminate()
            chromedriver.wait(timeout=10)
        print(f"docs in the browser: ok (screenshots in {out})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
