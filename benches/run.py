#!/usr/bin/env python3
"""canon's benchmark harness: canon against the same metric written by hand.

One command does everything (see README.md, "Benchmarks"):

    python3 benches/run.py --scale 200

It builds canon (the shipped `dist` profile), generates the sample company at the scale (once,
into bench-data/), installs DuckDB into benches/.venv, and then, for each
benchmark, first checks that canon, DuckDB and DataFusion give the same number
to the cent (a series instant by instant, a sliced result as rows of slice value
and value sorted by slice; and stops loudly if not), then times:

- canon: the built binary's `canon query` (or `reconcile`), a cold process,
  cache off (`--no-cache`: nothing remembered, every gate computed), wall time
  of the whole process;
- canon warm: the same with a cache folder that remembers the input files'
  hashes and the gates' outcomes but not the result (its `results/` is
  emptied before each run): the number is computed, the gates are not;
- canon without row gates: the same binary, cold, with its row-count gates
  skipped (`CANON_BENCH_SKIP_ROW_GATES`, which only a `--features
  bench-switches` build, as this harness builds, obeys): what the gates cost
  (issue 13 allows them 10 % cold); left out, with a note, for a binary
  without the switch;
- with `--baseline BINARY`: another canon build, cold, on the same command (a
  build without a change, to measure what the change costs);
- DuckDB: the hand-written SQL of benches/sql/duckdb/<bench>.sql in a fresh
  DuckDB connection (views over the same Parquet files), wall time of connect +
  query, measured inside the process so Python's start-up is not counted
  against it;
- DataFusion: the hand-written SQL of benches/sql/datafusion/<bench>.sql
  through `canon sql`, a cold process with no canon logic between the SQL and
  the engine.

Each engine has its own reference SQL, the fastest formulation an expert in
that engine would write (each file lists the formulations tried and their
times); both compute exactly the governed definition, and the check before
timing holds them to canon's answer to the cent. A missing file stops the
harness before anything runs.

It prints medians over --runs runs, the ratios canon/DuckDB and
canon/DataFusion, each one's peak resident memory, the time to load, validate
and compile the whole catalog, and a cached repeat query. Results also go to
bench-data/results-s<scale>.json. Timings vary with the machine's load: run it
on an idle machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
BENCHES = ROOT / "benches"
VENV = BENCHES / ".venv"
DUCKDB_VERSION = "2.0.0"
# The shipped build (Cargo.toml's `dist` profile: whole-program optimization),
# unless --profile release asks for the quicker build to iterate with.
PROFILE = "dist"
CANON = ROOT / "target" / PROFILE / "canon"
ZONE = ZoneInfo("America/Los_Angeles")


def local_day_start_utc(day: dt.date) -> str:
    """The UTC instant at which `day` starts in the reporting zone."""
    start = dt.datetime.combine(day, dt.time(0), tzinfo=ZONE)
    return start.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def period_params(start: str, end: str) -> dict:
    return {
        "from": start,
        "to": end,
        "from_ts": local_day_start_utc(day(start)),
        "to_ts": local_day_start_utc(day(end)),
    }


def instant_row(label: str, d: dt.date) -> str:
    """One instant of a series as a VALUES row: its period label, the day, and the instant its
    local day ends (written CAST('...+00:00' AS TIMESTAMP WITH TIME ZONE), UTC in both engines)."""
    end = local_day_start_utc(d + dt.timedelta(days=1))
    return f"('{label}', DATE '{d}', CAST('{end}+00:00' AS TIMESTAMP WITH TIME ZONE))"


def month_ends_params(year: int) -> dict:
    """The 12 month ends of `year` as a VALUES list (period label, the day, the instant its
    local day ends), and the last instant."""
    rows = []
    for month in range(1, 13):
        nxt = dt.date(year + (month == 12), month % 12 + 1, 1)
        rows.append(instant_row(f"{year}-{month:02d}", nxt - dt.timedelta(days=1)))
    return {"year": str(year), "instants": ", ".join(rows),
            "last_end_ts": local_day_start_utc(dt.date(year + 1, 1, 1))}


def days_params(start: str, end: str) -> dict:
    """Every day of [start, end) as a VALUES list like month_ends_params' (the period label is
    the day), the number of the instant after the last one when they are numbered from 1
    ({after_last}), the instants the first and the last local day end ({first_end_ts},
    {last_end_ts}), and the range itself ({from}, {to})."""
    first, stop = day(start), day(end)
    days = [first + dt.timedelta(days=i) for i in range((stop - first).days)]
    return {
        "from": start,
        "to": end,
        "instants": ", ".join(instant_row(str(d), d) for d in days),
        "after_last": str(len(days) + 1),
        "first_end_ts": local_day_start_utc(days[0] + dt.timedelta(days=1)),
        "last_end_ts": local_day_start_utc(stop),
    }


def as_of_params(as_of: str, **extra: str) -> dict:
    d = day(as_of)
    p = {"as_of": as_of, "as_of_end_ts": local_day_start_utc(d + dt.timedelta(days=1))}
    for name, value in extra.items():
        p[name] = value
        p[f"{name}_end_ts"] = local_day_start_utc(day(value) + dt.timedelta(days=1))
    return p


def conversion_params(start: str, end: str, within_days: int) -> dict:
    """A period's parameters plus the horizons up to which canon reads a conversion's events
    (src/compile/conversion.rs `horizon`): the period's exclusive end, the start of the local
    day {to} ({reached_horizon_ts}: a count of first moments, e.g. mqls, and the contacts its
    exclusions are judged on), and the start of the local day within_days + 1 days after it
    ({converted_horizon_ts}: a count of conversions within a window)."""
    p = period_params(start, end)
    p["reached_horizon_ts"] = local_day_start_utc(day(end))
    p["converted_horizon_ts"] = local_day_start_utc(day(end) + dt.timedelta(days=within_days + 1))
    return p


# Each benchmark: canon's command line, the hand SQL, its parameters, and how
# to read canon's answer.
BENCHMARKS = [
    {
        "name": "bookings",
        "what": "fiscal quarter FY2026-Q3",
        "canon": ["query", "bookings", "--period", "FY2026-Q3"],
        "params": period_params("2025-08-01", "2025-11-01"),
    },
    {
        "name": "open_pipeline",
        "what": "as of 2025-09-30",
        "canon": ["query", "open_pipeline", "--as-of", "2025-09-30"],
        "params": as_of_params("2025-09-30"),
    },
    {
        "name": "open_pipeline_monthly",
        "what": "at each month end of 2025",
        "canon": ["query", "open_pipeline", "--from", "2025-01-01", "--to", "2026-01-01",
                  "--grain", "month"],
        "params": month_ends_params(2025),
        "series": True,
    },
    {
        "name": "mqls",
        "what": "month 2025-10",
        "canon": ["query", "mqls", "--period", "2025-10"],
        "params": period_params("2025-10-01", "2025-11-01"),
    },
    {
        "name": "nrr",
        "what": "as of 2025-12-31 (T0 2024-12-31)",
        "canon": ["query", "nrr", "--as-of", "2025-12-31"],
        "params": as_of_params("2025-12-31", t0="2024-12-31"),
    },
    {
        "name": "bookings_to_revenue",
        "what": "bridge for FY2026-Q3",
        "canon": ["reconcile", "bookings_to_revenue", "--period", "FY2026-Q3"],
        "params": period_params("2025-08-01", "2025-11-01"),
        "bridge": True,
    },
    {
        "name": "arr_monthly",
        "what": "at each month end of 2025",
        "canon": ["query", "arr", "--from", "2025-01-01", "--to", "2026-01-01", "--grain", "month"],
        "params": month_ends_params(2025),
        "series": True,
    },
    {
        "name": "open_pipeline_daily_quarter",
        "what": "at each day of 2025-07-01..2025-10-01",
        "canon": ["query", "open_pipeline", "--from", "2025-07-01", "--to", "2025-10-01",
                  "--grain", "day"],
        "params": days_params("2025-07-01", "2025-10-01"),
        "series": True,
    },
    {
        "name": "nrr_by_country",
        "what": "as of 2025-12-31 by country",
        "canon": ["query", "nrr", "--as-of", "2025-12-31", "--by", "country"],
        "params": as_of_params("2025-12-31", t0="2024-12-31"),
        "sliced": "country",
    },
    {
        "name": "mql_to_sql_rate",
        # A quarter whose 90-day window has closed by the data's extract
        # (FY2026-Q3's closes 2026-01-29, after it: canon blocks that one).
        "what": "fiscal quarter FY2026-Q2",
        "canon": ["query", "mql_to_sql_rate", "--period", "FY2026-Q2"],
        "params": conversion_params("2025-05-01", "2025-08-01", 90),
    },
]


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(cmd: list, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, **kw)


def build() -> None:
    say(f"== building canon (cargo build --profile {PROFILE} --features bench-switches)")
    # bench-switches only adds CANON_BENCH_SKIP_ROW_GATES (the gates-off column);
    # with it unset the binary computes exactly what the plain build does.
    run(["cargo", "build", "--profile", PROFILE, "--quiet", "--features", "bench-switches"],
        cwd=ROOT)


def ensure_data(work: Path, scale: int, seed: int) -> Path:
    data = work / f"s{scale}-seed{seed}"
    if (data / ".complete").exists():
        return data
    say(f"== generating the sample company at scale {scale} into {shown(data)}")
    run([str(CANON), "sample", "--out", str(data), "--seed", str(seed), "--scale", str(scale)],
        cwd=ROOT, stdout=subprocess.DEVNULL)
    (data / ".complete").write_text("")
    return data


def shown(path: Path) -> str:
    """`path` relative to the repository when it is inside it."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def ensure_duckdb() -> Path:
    python = VENV / "bin" / "python"
    probe = [str(python), "-c", "import duckdb, sys; sys.exit(duckdb.__version__ != %r)" % DUCKDB_VERSION]
    if python.exists() and subprocess.run(probe).returncode == 0:
        return python
    say(f"== installing duckdb {DUCKDB_VERSION} into {VENV.relative_to(ROOT)}")
    run([sys.executable, "-m", "venv", str(VENV)])
    run([str(python), "-m", "pip", "install", "--quiet", f"duckdb=={DUCKDB_VERSION}"])
    return python


# The engines that run hand-written SQL, each from its own folder under benches/sql/.
SQL_ENGINES = ("duckdb", "datafusion")


def sql_path(bench: dict, engine: str) -> Path:
    return BENCHES / "sql" / engine / f"{bench['name']}.sql"


def check_sql_files(benches: list) -> None:
    """Every benchmark needs one reference SQL per engine: stop before anything runs if one is
    missing."""
    missing = [shown(sql_path(b, e)) for b in benches for e in SQL_ENGINES
               if not sql_path(b, e).is_file()]
    if missing:
        raise SystemExit("missing reference SQL (one file per engine and benchmark): "
                         + ", ".join(missing))


def sql_text(bench: dict, engine: str) -> str:
    path = sql_path(bench, engine)
    text = path.read_text()
    for name, value in bench["params"].items():
        text = text.replace("{" + name + "}", value)
    missing = sorted(set(re.findall(r"\{([a-z_0-9]+)\}", text)))
    if missing:
        raise SystemExit(f"{shown(path)} needs parameters the harness does not provide: {missing}")
    return text


class Failed(Exception):
    """A benchmarked command exited non-zero."""

    def first_line(self) -> str:
        lines = [l for l in str(self).splitlines()[1:] if l.strip()]
        return lines[0] if lines else str(self)


class Child:
    """A child process whose resource usage we read with wait4 (Popen would
    reap it first and lose the peak memory)."""

    @staticmethod
    def run(cmd: list, env: dict | None = None) -> tuple[float, int, bytes]:
        started = time.perf_counter()
        out_fd, out_path = tempfile.mkstemp()
        err_fd, err_path = tempfile.mkstemp()
        try:
            pid = os.fork()
            if pid == 0:
                os.dup2(out_fd, 1)
                os.dup2(err_fd, 2)
                os.chdir(ROOT)
                os.execve(str(cmd[0]), [str(c) for c in cmd], env or os.environ)
            _, status, usage = os.wait4(pid, 0)
            wall = time.perf_counter() - started
            out = Path(out_path).read_bytes()
            if os.waitstatus_to_exitcode(status) != 0:
                raise Failed(
                    f"command failed: {' '.join(map(str, cmd))}\n{Path(err_path).read_text()}"
                )
            return wall, usage.ru_maxrss, out
        finally:
            os.close(out_fd)
            os.close(err_fd)
            os.unlink(out_path)
            os.unlink(err_path)


def canon_env(cache_dir: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANON_")}
    if cache_dir:
        env["CANON_CACHE_DIR"] = cache_dir
    return env


ROW_GATES = {"uniqueness", "intervals"}


def row_gates(out: bytes) -> int:
    """How many row-count gate outcomes a canon JSON document reports."""
    def walk(x) -> int:
        if isinstance(x, dict):
            own = 1 if x.get("check") in ROW_GATES and "status" in x else 0
            return own + sum(walk(v) for v in x.values())
        if isinstance(x, list):
            return sum(walk(v) for v in x)
        return 0
    return walk(json.loads(out))


# A sliced benchmark's rows whose slice value is null: canon's JSON writes null and its table
# "(none)" (src/result/render.rs); the reference SQL writes COALESCE(slice, '(none)'), since
# `canon sql`'s tab-separated output cannot tell a null from an empty string.
NO_SLICE = "(none)"


def number(text):
    """A value as a Decimal; None for a null (a ratio over nothing: canon's JSON null, DuckDB's
    None, an empty cell of `canon sql`)."""
    return None if text is None or text == "" else Decimal(text)


def by_slice(pairs) -> list:
    """A sliced answer, (slice value, value) per row, compared as a list sorted by slice value:
    canon does not promise an order for sliced rows."""
    return sorted((((NO_SLICE if k is None else k), v) for k, v in pairs),
                  key=lambda kv: (kv[0], str(kv[1])))


def canon_answer(bench: dict, out: bytes):
    doc = json.loads(out)
    if bench.get("bridge"):
        return [(line["line"], Decimal(line["value"])) for line in bridge_lines(doc)]
    if bench.get("series"):
        return [(row["period"], number(row["value"])) for row in doc["rows"]]
    if bench.get("sliced"):
        return by_slice((row[bench["sliced"]], number(row["value"])) for row in doc["rows"])
    return number(doc["value"])


def bridge_lines(doc: dict) -> list:
    for key in ("bridge",):
        if isinstance(doc.get(key), list):
            return doc[key]
    raise SystemExit(f"cannot find the bridge lines in canon's JSON: keys {list(doc)}")


def tsv_answer(bench: dict, text: str):
    # One line per row after the header; a row of one null value is an empty line, so only the
    # newline that ends the output is dropped.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    rows = [line.split("\t") for line in lines]
    if not rows:
        # no output at all: what `canon sql` printed for no rows before it printed the header
        # alone (a `--binary` older than that; e.g. a sliced answer with no cohort at small scale)
        if bench.get("bridge") or bench.get("series") or bench.get("sliced"):
            return []
        raise SystemExit(f"{bench['name']}: expected one row, got none")
    header, body = rows[0], rows[1:]
    if bench.get("bridge"):
        li, vi = header.index("line"), header.index("value")
        return [(r[li], Decimal(r[vi])) for r in body]
    if bench.get("series"):
        pi, vi = header.index("period"), header.index("value")
        return [(r[pi], number(r[vi])) for r in body]
    if bench.get("sliced"):
        si, vi = header.index(bench["sliced"]), header.index("value")
        return by_slice((r[si], number(r[vi])) for r in body)
    if len(body) != 1:
        raise SystemExit(f"{bench['name']}: expected one row, got {len(body)}")
    return number(body[0][header.index("value")])


DUCKDB_DRIVER = r"""
import json, sys, time, duckdb
root, sql_path = sys.argv[1], sys.argv[2]
sql = open(sql_path).read()
started = time.perf_counter()
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
import os
for system in sorted(os.listdir(root)):
    sdir = os.path.join(root, system)
    if not os.path.isdir(sdir):
        continue
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {system}")
    for table in sorted(os.listdir(sdir)):
        con.execute(
            f"CREATE VIEW {system}.{table} AS SELECT * FROM read_parquet('{sdir}/{table}/**/*.parquet')"
        )
cur = con.execute(sql)
names = [d[0] for d in cur.description]
rows = cur.fetchall()
elapsed = time.perf_counter() - started
print(json.dumps({"seconds": elapsed, "names": names,
                  "rows": [[None if v is None else str(v) for v in r] for r in rows]}))
"""


def duckdb_answer(bench: dict, doc: dict):
    names, rows = doc["names"], doc["rows"]
    if bench.get("bridge"):
        li, vi = names.index("line"), names.index("value")
        return [(r[li], Decimal(r[vi])) for r in rows]
    if bench.get("series"):
        pi, vi = names.index("period"), names.index("value")
        return [(r[pi], number(r[vi])) for r in rows]
    if bench.get("sliced"):
        si, vi = names.index(bench["sliced"]), names.index("value")
        return by_slice((r[si], number(r[vi])) for r in rows)
    if len(rows) != 1:
        raise SystemExit(f"{bench['name']}: DuckDB returned {len(rows)} rows, expected one")
    return number(rows[0][names.index("value")])


def shown_value(v) -> str | None:
    """A value as the results file keeps it: canon's plain digits, null for a null."""
    return None if v is None else str(v)


def median(xs: list) -> float:
    return statistics.median(xs)


def machine() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) // (1024 * 1024)
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "memory_gib": mem,
            "os": platform.platform(), "python": platform.python_version()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=int, default=200, help="sample company scale (200: ~31M rows)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--runs", type=int, default=5, help="timed runs per engine and benchmark")
    ap.add_argument("--only", action="append", help="run only these benchmarks (repeatable)")
    ap.add_argument("--profile", choices=["dist", "release"], default="dist",
                    help="the cargo profile to build and time: dist (default) is the shipped "
                         "build, with whole-program optimization (a cold build takes longer, "
                         "each change relinks for minutes); release is the quicker one to "
                         "iterate with (about 5-10 %% slower)")
    ap.add_argument("--no-build", action="store_true",
                    help="use the binary already built with --profile")
    ap.add_argument("--binary", type=Path,
                    help="time this canon binary instead of building one "
                         "(the tests check the harness end to end with the debug build)")
    ap.add_argument("--baseline", type=Path,
                    help="also time this canon binary, cold (e.g. a build before a change), "
                         "and report canon/baseline")
    ap.add_argument("--work", type=Path, default=ROOT / "bench-data",
                    help="where the generated company and the results go (default bench-data/)")
    ap.add_argument("--duckdb-python", action="store_true",
                    help="only install DuckDB into benches/.venv and print that Python's path "
                         "(the tests read canon's published files with it)")
    args = ap.parse_args()
    if args.duckdb_python:
        print(ensure_duckdb())
        return

    benches = [b for b in BENCHMARKS if not args.only or b["name"] in args.only]
    check_sql_files(benches)

    global CANON, PROFILE
    PROFILE = args.profile
    CANON = ROOT / "target" / PROFILE / "canon"
    if args.binary:
        CANON = args.binary.resolve()
    elif not args.no_build:
        build()
    args.work.mkdir(parents=True, exist_ok=True)
    data = ensure_data(args.work, args.scale, args.seed)
    python = ensure_duckdb()
    driver = Path(tempfile.mkdtemp()) / "duckdb_query.py"
    driver.write_text(DUCKDB_DRIVER)
    env = canon_env()
    results = []
    for bench in benches:
        name = bench["name"]
        sql_dir = Path(tempfile.mkdtemp())
        sql_files = {}
        for engine in SQL_ENGINES:
            sql_files[engine] = sql_dir / f"{name}.{engine}.sql"
            sql_files[engine].write_text(sql_text(bench, engine))
        # Cache off for every benchmark, the reconciliation too: its two
        # governed sides would otherwise be served from the result cache.
        canon_cmd = [CANON, *bench["canon"], "--data", data, "--format", "json", "--no-cache"]
        # The raw baseline without canon.yaml's memory pool: DataFusion's hash
        # joins cannot spill, and a hand-written plan may not fit in it.
        df_cmd = [CANON, "sql", "--data", data, "--file", sql_files["datafusion"],
                  "--memory-limit", "none"]
        duck_cmd = [python, driver, data, sql_files["duckdb"]]

        # Each engine: its command, environment, how to read its answer and
        # which time to count (DuckDB reports its own, without Python's start).
        # Warm: the gates' outcomes and the files' hashes remembered (primed
        # by the check run below), the result itself emptied before each run.
        warm_dir = tempfile.mkdtemp()
        warm_cmd = [c for c in canon_cmd if c != "--no-cache"]
        engines = {
            "canon": (canon_cmd, env, lambda out: canon_answer(bench, out), None),
            "canon_warm": (warm_cmd, canon_env(warm_dir), lambda out: canon_answer(bench, out), None),
            "duckdb": (duck_cmd, None, lambda out: duckdb_answer(bench, json.loads(out)),
                       lambda out: json.loads(out)["seconds"]),
            "datafusion": (df_cmd, env, lambda out: tsv_answer(bench, out.decode()), None),
        }
        no_gates_env = {**env, "CANON_BENCH_SKIP_ROW_GATES": "1"}
        engines["canon_no_row_gates"] = (
            canon_cmd, no_gates_env, lambda out: canon_answer(bench, out), None)
        if args.baseline:
            base_cmd = [args.baseline.resolve(), *canon_cmd[1:]]
            engines["baseline"] = (base_cmd, env, lambda out: canon_answer(bench, out), None)
        say(f"== {name} ({bench['what']}): checking that all three agree to the cent")
        answers, failures, notes = {}, {}, []
        for engine, (cmd, engine_env, answer, _) in engines.items():
            try:
                answers[engine] = answer(Child.run(cmd, engine_env)[2])
            except Failed as e:
                if engine == "canon":
                    raise SystemExit(str(e))
                failures[engine] = e.first_line()
                say(f"   {engine} failed: {failures[engine]}")
        # The gates-off run must really have skipped them, and the cold run run them.
        if "canon_no_row_gates" in answers:
            gated = row_gates(Child.run(canon_cmd, env)[2])
            skipped = row_gates(Child.run(canon_cmd, no_gates_env)[2])
            if not gated:
                raise SystemExit(f"{name}: canon reported no row-count gate")
            if skipped:
                del answers["canon_no_row_gates"]
                notes.append("no row-gates-off column: this binary ignores "
                             "CANON_BENCH_SKIP_ROW_GATES (build it with --features bench-switches)")
                say(f"   {notes[-1]}")
        want = answers["canon"]
        for engine, got in answers.items():
            if got != want:
                raise SystemExit(
                    f"{name}: the answers differ!\n"
                    + "\n".join(f"  {e:<10} {a}" for e, a in answers.items())
                )

        timings = {e: [] for e in answers}
        peaks = {e: 0 for e in answers}
        for i in range(args.runs):
            say(f"   run {i + 1}/{args.runs}")
            for engine in answers:
                cmd, engine_env, _, own_time = engines[engine]
                if engine == "canon_warm":
                    shutil.rmtree(Path(warm_dir) / "results", ignore_errors=True)
                wall, rss, out = Child.run(cmd, engine_env)
                timings[engine].append(own_time(out) if own_time else wall)
                peaks[engine] = max(peaks[engine], rss)
        med = {k: median(v) for k, v in timings.items()}
        ratio = lambda other: med["canon"] / med[other] if other in med else None
        results.append({
            "benchmark": name,
            "what": bench["what"],
            "value": ([[l, shown_value(v)] for l, v in want]
                      if bench.get("bridge") or bench.get("series") or bench.get("sliced")
                      else shown_value(want)),
            "median_s": med,
            "runs_s": timings,
            "peak_mib": {k: v / 1024 for k, v in peaks.items()},
            "failed": failures,
            "notes": notes,
            "canon_over_duckdb": ratio("duckdb"),
            "canon_over_datafusion": ratio("datafusion"),
            "warm_over_cold": med["canon_warm"] / med["canon"] if "canon_warm" in med else None,
            "canon_over_baseline": ratio("baseline"),
            "canon_over_no_row_gates": ratio("canon_no_row_gates"),
        })
        shutil.rmtree(warm_dir, ignore_errors=True)

    # The whole catalog: load, validate, compile every definition, no data.
    say("== whole-catalog compile (canon validate --no-data)")
    compile_ms, compile_wall = [], []
    for _ in range(args.runs):
        wall, _, out = Child.run([CANON, "validate", "--no-data"], env)
        compile_wall.append(wall)
        for line in out.decode().splitlines():
            if line.startswith("loaded, checked and compiled in"):
                compile_ms.append(float(line.split(" in ")[1].split()[0]))
    # A cached repeat: the same query again with the cache on.
    say("== cached repeat (canon query bookings, cache on)")
    cache_dir = tempfile.mkdtemp()
    cached_env = canon_env(cache_dir)
    cached_cmd = [CANON, "query", "bookings", "--period", "FY2026-Q3", "--data", data, "--format", "json"]
    Child.run(cached_cmd, cached_env)
    cached_wall, cached_inner = [], []
    for _ in range(args.runs):
        wall, _, out = Child.run(cached_cmd, cached_env)
        doc = json.loads(out)
        if doc["cache"]["status"] != "hit":
            raise SystemExit(f"the repeat was not served from the cache: {doc['cache']}")
        cached_wall.append(wall)
        cached_inner.append(doc["elapsed_ms"])

    report = {
        "scale": args.scale,
        "seed": args.seed,
        "runs": args.runs,
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "canon_binary": str(CANON.relative_to(ROOT)) if CANON.is_relative_to(ROOT) else str(CANON),
        "benchmarks": results,
        "catalog_compile_ms": median(compile_ms) if compile_ms else None,
        "catalog_compile_process_s": median(compile_wall),
        "cached_repeat_process_s": median(cached_wall),
        "cached_repeat_ms": median(cached_inner),
    }
    out_path = args.work / f"results-s{args.scale}.json"
    out_path.write_text(json.dumps(report, indent=2))
    print(table(report))
    say(f"results written to {shown(out_path)}")


def table(r: dict) -> str:
    m = r["machine"]
    lines = [
        f"scale {r['scale']} (seed {r['seed']}), median of {r['runs']} runs, {r['when']}",
        f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}",
        "",
        "| benchmark | canon s | DuckDB s | DataFusion s | canon/DuckDB | canon/DataFusion | peak MiB canon / DuckDB / DataFusion |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for b in r["benchmarks"]:
        s, p = b["median_s"], b["peak_mib"]
        sec = lambda e: f"{s[e]:.3f}" if e in s else "failed"
        mib = lambda e: f"{p[e]:.0f}" if e in p else "-"
        rat = lambda x: f"{x:.2f}" if x is not None else "-"
        lines.append(
            f"| {b['benchmark']} ({b['what']}) | {sec('canon')} | {sec('duckdb')} | {sec('datafusion')} "
            f"| {rat(b['canon_over_duckdb'])} | {rat(b['canon_over_datafusion'])} "
            f"| {mib('canon')} / {mib('duckdb')} / {mib('datafusion')} |"
        )
    lines += [
        "",
        "canon cold (nothing remembered) and warm (input hashes and gate outcomes remembered, result computed):",
        "",
        "| benchmark | cold s | warm s | warm/cold | row gates off s | cold/gates off | baseline s | cold/baseline |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for b in r["benchmarks"]:
        s = b["median_s"]
        sec = lambda e: f"{s[e]:.3f}" if e in s else "-"
        rat = lambda x: f"{x:.2f}" if x is not None else "-"
        lines.append(
            f"| {b['benchmark']} | {sec('canon')} | {sec('canon_warm')} | {rat(b.get('warm_over_cold'))} "
            f"| {sec('canon_no_row_gates')} | {rat(b.get('canon_over_no_row_gates'))} "
            f"| {sec('baseline')} | {rat(b.get('canon_over_baseline'))} |"
        )
    for b in r["benchmarks"]:
        for engine, why in b.get("failed", {}).items():
            lines.append(f"\n{b['benchmark']}: {engine} failed: {why}")
        for note in b.get("notes", []):
            lines.append(f"\n{b['benchmark']}: {note}")
    lines += [
        "",
        f"whole-catalog load + validate + compile: {r['catalog_compile_ms'] or float('nan'):.1f} ms in-process "
        f"({r['catalog_compile_process_s'] * 1000:.0f} ms whole process)",
        f"cached repeat (bookings): {r['cached_repeat_ms']:.0f} ms in-process "
        f"({r['cached_repeat_process_s'] * 1000:.0f} ms whole process)",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    try:
        main()
    except Failed as e:
        raise SystemExit(str(e))
