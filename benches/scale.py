#!/usr/bin/env python3
"""What distribution costs, and how far one process goes: the measurements
behind docs/scale.md.

    python3 benches/scale.py [--scales 50 200 800] [--binary PATH] [--cap-gib 2]

BINARY is a release build with the `cluster` feature (default
target/cluster/release/canon, built if missing). For each scale it uses the
sample company of benches/run.py (bench-data/s<scale>-seed42, generated once
with `canon sample`) and runs five workloads (the harness's: bookings,
open_pipeline, mqls, nrr and the bookings-to-revenue bridge), each a cold
process with the cache off, in four ways:

- disk: one process reading the extracts from the local folder;
- capped: the same, inside a memory cgroup whose hard limit is --cap-gib
  (swap included), with canon.yaml's engine.memory_limit set to three
  quarters of it: does one process finish within that much memory? (Needs
  a writable cgroup v1 memory controller; otherwise reported as not run.)
- bucket: one process reading the same extracts from moto on loopback
  (s3://acme/extracts): what an object store costs before any cluster;
- cluster: the same bucket through a scheduler and two executors (one task
  slot each) on this machine, started afresh for each workload so each
  process's peak memory is the workload's.

Every way must give the disk run's number (a bridge: its lines); a
difference stops the script. It prints a table (wall seconds, peak resident
MiB of the client, and for the cluster the executors' and the scheduler's
peaks) and writes bench-data/scale-s<scale>.json (`--table` prints every
scale measured so far). One 2-core machine cannot
show a cluster's speed-up: the cluster column is the overhead of
distribution (a scheduler round trip per job, shuffles through local disk,
Flight transfers), not what more machines would give.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "object_store"))
from loopback import BUCKET_URL, Loopback, peak_rss_mib  # noqa: E402

WORKLOADS = [
    ("bookings", ["query", "bookings", "--period", "FY2026-Q3"]),
    ("open_pipeline", ["query", "open_pipeline", "--as-of", "2025-09-30"]),
    ("mqls", ["query", "mqls", "--period", "2025-10"]),
    ("nrr", ["query", "nrr", "--as-of", "2025-12-31"]),
    ("bridge", ["reconcile", "bookings_to_revenue", "--period", "FY2026-Q3"]),
]
CGROUP = "/sys/fs/cgroup/memory/canon-scale"


def answer(doc: dict):
    """What must agree across the ways: the value, and the lines of a
    bridge (the reconciliation's, or nrr's)."""
    return [doc.get("value"), doc.get("bridge")]


def shown(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "answer"}


def timed(command: list, env: dict, project: str, cgroup: bool = False, runs: int = 1) -> dict:
    """Runs one canon command `runs` times: the median wall time, the
    largest peak RSS, and the answer (which must be the same every time)."""
    results = [once(command, env, project, cgroup) for _ in range(runs)]
    for r in results:
        if "failed" in r or r.get("answer") != results[0].get("answer"):
            return r
    return {"seconds": statistics.median(r["seconds"] for r in results),
            "peak_mib": max(r["peak_mib"] for r in results), "runs": runs,
            "answer": results[0]["answer"]}


def once(command: list, env: dict, project: str, cgroup: bool) -> dict:
    """Runs one canon command once; its wall time, peak RSS and answer."""
    stats = tempfile.NamedTemporaryFile(suffix=".time", delete=False).name
    full = ["/usr/bin/time", "-f", "%e %M", "-o", stats, *command[:1], "--project", project,
            *command[1:], "--format", "json", "--no-cache"]
    if cgroup:
        full = ["sh", "-c", f'echo $$ > {CGROUP}/cgroup.procs && exec "$@"', "sh", *full]
    started = time.time()
    out = subprocess.run(full, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.time() - started
    try:
        seconds, kib = open(stats).read().split()[-2:]
        peak = int(kib) / 1024
        wall = float(seconds)
    except (ValueError, OSError):
        peak = float("nan")
    os.unlink(stats)
    result = {"seconds": round(wall, 2), "peak_mib": round(peak)}
    if out.returncode != 0:
        killed = out.returncode in (137, -9) or "Killed" in out.stderr
        result["failed"] = "killed at the memory cap" if killed else out.stderr.strip()[-400:]
        return result
    result["answer"] = answer(json.loads(out.stdout))
    return result


def project_copy(memory_limit: str | None = None) -> str:
    """A copy of the project (its state, the volume gate's last counts, is
    then the copy's: runs over other scales and a bucket named like the
    tests' must not touch the project's own), with engine.memory_limit
    set to `memory_limit` if given."""
    folder = tempfile.mkdtemp(prefix="canon-scale-")
    for name in ["models", "metrics"]:
        shutil.copytree(os.path.join(ROOT, name), os.path.join(folder, name))
    text = open(os.path.join(ROOT, "canon.yaml")).read()
    if memory_limit:
        if "memory_limit: 2GiB" not in text:
            sys.exit("canon.yaml no longer says `memory_limit: 2GiB`: update benches/scale.py")
        text = text.replace("memory_limit: 2GiB", f"memory_limit: {memory_limit}")
    open(os.path.join(folder, "canon.yaml"), "w").write(text)
    return folder


def capped_project(cap_gib: float) -> str:
    """A copy of the project whose engine.memory_limit is 3/4 of the cap,
    leaving the rest for what the engine's pool does not count."""
    return project_copy(f"{int(cap_gib * 1024 * 3 / 4)}MiB")


def make_cgroup(cap_gib: float) -> bool:
    try:
        os.makedirs(CGROUP, exist_ok=True)
        limit = str(int(cap_gib * 2**30))
        open(f"{CGROUP}/memory.limit_in_bytes", "w").write(limit)
        if os.path.exists(f"{CGROUP}/memory.memsw.limit_in_bytes"):
            open(f"{CGROUP}/memory.memsw.limit_in_bytes", "w").write(limit)
        return True
    except OSError as e:
        print(f"no memory cgroup ({e}): the capped runs are skipped")
        return False


def ensure_data(binary: str, scale: int) -> str:
    data = os.path.join(ROOT, "bench-data", f"s{scale}-seed42")
    if not os.path.isdir(data):
        print(f"generating scale {scale} into {data} …", flush=True)
        subprocess.run([binary, "sample", "--out", data, "--seed", "42", "--scale", str(scale)],
                       check=True)
    return data


def folder_mib(folder: str) -> float:
    total = 0
    for base, _, names in os.walk(folder):
        total += sum(os.path.getsize(os.path.join(base, n)) for n in names)
    return total / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scales", type=int, nargs="+", default=[50, 200, 800])
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/cluster/release/canon"))
    ap.add_argument("--cap-gib", type=float, default=2.0)
    ap.add_argument("--only", nargs="+", help="run only these workloads")
    ap.add_argument("--runs", type=int, default=1,
                    help="runs of each way (median time, largest peak); a capped run runs once")
    ap.add_argument("--table", action="store_true",
                    help="only print the table of every scale measured so far")
    args = ap.parse_args()
    if args.table:
        return print_table(saved())
    if not os.path.exists(args.binary):
        subprocess.run(["cargo", "build", "--release", "--features", "cluster",
                        "--target-dir", "target/cluster"], cwd=ROOT, check=True)
    binary = os.path.abspath(args.binary)
    workloads = [w for w in WORKLOADS if not args.only or w[0] in args.only]
    capped = capped_project(args.cap_gib) if make_cgroup(args.cap_gib) else None
    project = project_copy()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CANON_", "AWS_"))}
    results = {"when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "machine": f"{os.cpu_count()} cores", "cap_gib": args.cap_gib, "scales": []}
    for scale in args.scales:
        data = ensure_data(binary, scale)
        row = {"scale": scale, "data_mib": round(folder_mib(data)), "workloads": {}}
        results["scales"].append(row)
        for name, command in workloads:
            disk = timed([binary, *command, "--data", data], env, project, runs=args.runs)
            print(f"s{scale} {name:14} disk    {shown(disk)}", flush=True)
            row["workloads"][name] = {"disk": disk}
            if capped:
                cap = timed([binary, *command, "--data", data], env, capped, cgroup=True)
                print(f"s{scale} {name:14} capped  {shown(cap)}", flush=True)
                row["workloads"][name]["capped"] = cap
        started = time.time()
        with Loopback(data) as loop:
            row["upload_s"] = round(time.time() - started, 1)
            print(f"s{scale} uploaded {row['data_mib']} MiB to moto in {row['upload_s']} s")
            for name, command in workloads:
                bucket = timed([binary, *command, "--data", BUCKET_URL], loop.env, project,
                               runs=args.runs)
                print(f"s{scale} {name:14} bucket  {shown(bucket)}", flush=True)
                scheduler = loop.start_cluster(binary)
                cluster = timed([binary, *command, "--data", BUCKET_URL, "--cluster",
                                 f"df://127.0.0.1:{scheduler}"], loop.env, project, runs=args.runs)
                cluster["executor_peak_mib"] = [round(peak_rss_mib(p.pid)) for p in loop.executors]
                cluster["scheduler_peak_mib"] = round(peak_rss_mib(loop.cluster[0].pid))
                loop.stop_cluster()
                print(f"s{scale} {name:14} cluster {shown(cluster)}", flush=True)
                row["workloads"][name].update(bucket=bucket, cluster=cluster)
        for name, ways in row["workloads"].items():
            expected = ways["disk"].get("answer")
            for way, result in ways.items():
                if "answer" in result and result["answer"] != expected:
                    sys.exit(f"s{scale} {name}: {way} gave {result['answer']}, disk {expected}")
        json.dump({**results, "scales": [row]}, open(result_file(scale), "w"), indent=1)
    print_table(saved())
    for folder in [capped, project]:
        if folder:
            shutil.rmtree(folder, ignore_errors=True)


def result_file(scale: int) -> str:
    return os.path.join(ROOT, "bench-data", f"scale-s{scale}.json")


def saved() -> dict:
    """Every scale measured so far (bench-data/scale-s<scale>.json)."""
    rows = []
    folder = os.path.join(ROOT, "bench-data")
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if name.startswith("scale-s") and name.endswith(".json"):
            rows += json.load(open(os.path.join(folder, name)))["scales"]
    return {"scales": sorted(rows, key=lambda r: r["scale"])}


def print_table(results: dict) -> None:
    print("\n| scale | data | workload | disk s | disk MiB | capped | bucket s | cluster s "
          "| cluster/bucket | client MiB | executors MiB | scheduler MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in results["scales"]:
        for name, w in row["workloads"].items():
            disk, bucket, cluster = w["disk"], w.get("bucket", {}), w.get("cluster", {})
            cap = w.get("capped")
            capped = "not run" if cap is None else (
                f"fails: {cap['failed'][:40]}" if "failed" in cap
                else f"ok, {cap['seconds']} s, {cap['peak_mib']} MiB")
            ratio = (f"{cluster['seconds'] / bucket['seconds']:.1f}×"
                     if bucket.get("seconds") and cluster.get("seconds") else "")
            print(f"| {row['scale']} | {row['data_mib']} MiB | {name} | {disk['seconds']} "
                  f"| {disk['peak_mib']} | {capped} | {bucket.get('seconds')} "
                  f"| {cluster.get('seconds')} | {ratio} | {cluster.get('peak_mib')} "
                  f"| {cluster.get('executor_peak_mib')} | {cluster.get('scheduler_peak_mib')} |")


if __name__ == "__main__":
    main()
