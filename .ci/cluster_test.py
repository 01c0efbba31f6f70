"""canon's plans on a Ballista cluster, end to end on loopback.

    python3 .ci/cluster_test.py CLUSTER_CANON [PLAIN_CANON]

Starts an S3-compatible server (moto, tests/object_store/s3_server.py) with
the sample company under s3://acme/extracts, a scheduler and two executors
as separate processes of CLUSTER_CANON (a build with the `cluster`
feature), then computes bookings, open_pipeline, mqls and nrr for FY2026-Q1
and the bookings-to-revenue bridge twice: on this machine from the
committed sample_data/ (PLAIN_CANON, default: CLUSTER_CANON), and on the
cluster from the bucket (`--cluster df://127.0.0.1:PORT`). Every number,
exclusion tally and bridge line must be equal, and `publish` of bookings,
nrr and the bridge from the bucket must write the same files on the
cluster as on this machine (but for the stamps of when). Then the guards:
a job on executors that never answer fails at CANON_CLUSTER_TIMEOUT and is
cancelled on the scheduler, as is one whose client is stopped by SIGINT or
SIGTERM (exit 130 or 143), and
an object rewritten after canon listed it, before the executors read it,
fails the run instead of giving a number over other bytes, and a damaged
data page an executor cannot decode is a data error, not the definition's; wrong starts
(bad ports, IPv6, unreachable or malformed --cluster, a huge
CANON_CLUSTER_TIMEOUT) are refused clearly; a versioned bucket gives the
local number; a cluster run writes nothing to the result cache.

Then executors killed: one killed between two jobs (the scheduler finds it
gone when it launches the next job's tasks): canon's scheduler must refuse
that job and the client run it again (with a warning), giving the local
number. One killed 3 s and 4 s into a grr query, and one frozen (SIGSTOP)
3 s into it, must fail the run clearly or give the local number, within
300 s (no CANON_CLUSTER_TIMEOUT set, so a hang would wait an hour); after
each, the executor left must still answer bookings. Ballista 55's recovery
from a lost executor leaked the surviving executor's one task slot, and the
run and every later job waited forever (CI at 84284d8, and 2 of 2 frozen
trials); canon's scheduler now cancels the running jobs when an executor is
lost and the client runs them again; a run again the scheduler does not
take within a minute fails as the cluster's failure (CI at c6a0856 saw ten
runs again never queued, and the run waited to this trial's limit). Before canon's scheduler refused
recovered jobs (src/cluster/clean_jobs.rs), such a kill gave grr 0.907200 or
0.889383 for 0.877106 with exit 0. Every executor killed 3 s into grr must
fail the run as the cluster's failure within 200 s (Ballista's grace for an
executor to come back is 30 s here), and the scheduler killed mid-query too.
Exits non-zero, with what differed, otherwise. Every process is stopped at
the end.

`--metric NAME` adds a metric to the four.
"""

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "object_store"))
from loopback import BUCKET_URL, Loopback, free_port  # noqa: E402

METRICS = ["bookings", "open_pipeline", "mqls", "nrr"]
PERIOD = "FY2026-Q1"


def numbers(result: dict) -> dict:
    """What must agree: the value, and each exclusion's rows and value."""
    return {
        "value": result.get("value"),
        "exclusions": [
            (x.get("name"), x.get("rows"), x.get("value")) for x in result.get("exclusions", [])
        ],
    }


def published_files(folder: str) -> dict:
    """Every published file's bytes (by sha256), but the stamps of when:
    the manifest's `generated_at`, the history's `published_at` and so the
    manifest's seal of the history's bytes, `history_sha256`."""
    files = {}
    for base, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(base, name)
            data = open(path, "rb").read()
            if name == "manifest.json":
                manifest = json.loads(data)
                manifest.pop("generated_at", None)
                manifest.pop("history_sha256", None)
                data = json.dumps(manifest, sort_keys=True).encode()
            elif name == "history.jsonl":
                rows = [json.loads(line) for line in data.splitlines()]
                for row in rows:
                    row.pop("published_at", None)
                data = json.dumps(rows, sort_keys=True).encode()
            files[os.path.relpath(path, folder)] = hashlib.sha256(data).hexdigest()
    return files


def guards(loop: Loopback, cluster_canon: str, plain_canon: str, scheduler: int) -> list:
    """A stalled job, an object rewritten while the executors read it and a
    damaged data page: each must fail the run with a clear error, never hang
    or answer."""
    failures = []
    env = loop.env
    command = [cluster_canon, "--project", ROOT, "query", "bookings", "--period", PERIOD,
               "--data", BUCKET_URL, "--cluster", f"df://127.0.0.1:{scheduler}"]

    def pause(stop: bool) -> None:
        for p in loop.executors:
            p.send_signal(signal.SIGSTOP if stop else signal.SIGCONT)

    # Executors that never answer: the job's deadline, not a wait forever.
    t = time.time()
    pause(True)
    try:
        out = subprocess.run(command, env={**env, "CANON_CLUSTER_TIMEOUT": "3"},
                             capture_output=True, text=True, timeout=120)
    finally:
        pause(False)
    stalled = out.returncode != 0 and "did not finish within 3 s" in out.stderr
    # ... and the scheduler told to stop it, not left holding it: the job
    # the client names is the one the scheduler's log says it cancelled,
    # found among its active jobs (its tasks cancelled, not just the
    # request logged).
    named = re.search(r"canon asked the scheduler to cancel it \(job (\S+)\)", out.stderr)
    cancelled = False
    for _ in range(50):
        log = loop.log_tail(200_000)
        if named and f"Job cancelled: [{named.group(1)}]" in log \
                and f"running tasks for job {named.group(1)}" in log:
            cancelled = True
            break
        time.sleep(0.1)
    print(f"{'stalled job':15} {'fails' if stalled else 'DID NOT FAIL'} after "
          f"{time.time() - t:.1f} s (CANON_CLUSTER_TIMEOUT=3), "
          f"{'cancelled' if cancelled else 'NOT CANCELLED'} on the scheduler")
    if not stalled or not cancelled:
        failures.append(f"a stalled job: exit {out.returncode}, {out.stderr[-600:]}")

    # Ctrl-C while the job waits on the executors: the process asks the
    # scheduler to cancel it before exiting 130 (src/cluster/interrupt.rs),
    # instead of leaving it to be computed for no one. Then SIGTERM, 143.
    for sig, status in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        t = time.time()
        mark = log_mark(loop)
        pause(True)
        try:
            run = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
            submitted = False
            for _ in range(200):  # until the scheduler has the job
                if "Job submitted" in what_the_job_said(loop, mark) or run.poll() is not None:
                    submitted = True
                    break
                time.sleep(0.1)
            time.sleep(1)
            run.send_signal(sig)
            _, err = run.communicate(timeout=60)
        finally:
            pause(False)
        named = re.search(r"canon was interrupted: canon asked the scheduler to cancel this "
                          r"job.*job=(\S+)", err)
        cancelled = False
        for _ in range(50):
            log = loop.log_tail(200_000)
            if named and f"Job cancelled: [{named.group(1)}]" in log:
                cancelled = True
                break
            time.sleep(0.1)
        ok = submitted and run.returncode == status and cancelled
        print(f"{sig.name + ' mid-job':15} exit {run.returncode} after {time.time() - t:.1f} s, "
              f"{'cancelled' if cancelled else 'NOT CANCELLED'} on the scheduler")
        if not ok:
            failures.append(f"{sig.name} mid-job: submitted {submitted}, exit {run.returncode}, "
                            f"{err[-600:]}")

    # crm/opportunity rewritten (another company's extract, same columns)
    # after canon listed it and before the executors read it.
    other = os.path.join(loop.work, "other-company")
    subprocess.run([plain_canon, "sample", "--out", other, "--seed", "7", "--scale", "1"],
                   check=True, capture_output=True)
    key = "extracts/crm/opportunity/part-00000.parquet"

    t = time.time()
    pause(True)
    try:
        run = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
        time.sleep(5)  # listed and submitted; the job waits for the executors
        loop.upload(os.path.join(other, "crm/opportunity/part-00000.parquet"), key)
    finally:
        pause(False)
    _, err = run.communicate(timeout=300)
    loop.upload(os.path.join(ROOT, "sample_data/crm/opportunity/part-00000.parquet"), key)
    caught = run.returncode != 0 and "changed while the cluster read it" in err \
        and "crm/opportunity" in err
    print(f"{'object rewritten':15} {'fails' if caught else 'NOT CAUGHT'} "
          f"({time.time() - t:.1f} s)")
    if not caught:
        failures.append(f"an object rewritten mid-run: exit {run.returncode}, {err[-600:]}")

    # A damaged data page (the footer intact, so the client's checks pass):
    # the executor's decode error is the data's fault, a data error at the
    # data root as on one machine reading the store, not an engine error
    # placed in arr's definition (metrics/customers.yaml).
    key = "extracts/billing/rate_plan_charge/part-00000.parquet"
    good = os.path.join(ROOT, "sample_data/billing/rate_plan_charge/part-00000.parquet")
    damaged = os.path.join(loop.work, "damaged.parquet")
    data = bytearray(open(good, "rb").read())
    for i in range(len(data) // 3, len(data) // 3 + 2000):
        data[i] ^= 0x5A
    open(damaged, "wb").write(bytes(data))
    t = time.time()
    loop.upload(damaged, key)
    try:
        out = subprocess.run(
            [cluster_canon, "--project", ROOT, "query", "arr", "--as-of", "2025-12-31",
             "--data", BUCKET_URL, "--cluster", f"df://127.0.0.1:{scheduler}"],
            env=env, capture_output=True, text=True, timeout=300)
    finally:
        loop.upload(good, key)
    located = out.returncode == 1 and "data error in the data root" in out.stderr \
        and "does not decode" in out.stderr and "customers.yaml" not in out.stderr
    print(f"{'damaged page':15} {'a data error' if located else 'NOT LOCATED'} "
          f"({time.time() - t:.1f} s)")
    if not located:
        failures.append(f"a damaged page: exit {out.returncode}, {out.stderr[-600:]}")
    return failures


def refusals(canon: str, loop: Loopback) -> list:
    """Processes started or pointed wrongly: each refuses with a clear error
    and exit 2, never a panic, a process that waits, or an error blamed on a
    metric's definition."""
    work = loop.work
    import socket
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    executor = [canon, "cluster", "executor", "--work-dir", os.path.join(work, "refused")]
    cases = [
        (executor + ["--cores", "0"], "--cores 0: an executor needs at least one task slot"),
        (executor + ["--memory-limit", "lots"], "--memory-limit `lots` is not a size"),
        (executor + ["--scheduler", "sched.internal"], "--scheduler sched.internal: expected HOST:PORT"),
        (executor + ["--scheduler", "127.0.0.1:1"], "cannot reach the scheduler at 127.0.0.1:1"),
        (executor + ["--bind", "::1"], "register by IPv4 address or host name only"),
        (executor + ["--port", "0"], "--port and --grpc-port need fixed ports"),
        ([canon, "cluster", "scheduler", "--bind", f"127.0.0.1:{port}"],
         f"the scheduler cannot serve on 127.0.0.1:{port}"),
    ]
    query = [canon, "--project", ROOT, "query", "bookings", "--period", PERIOD,
             "--data", BUCKET_URL, "--cluster"]
    nobody = free_port()
    cases += [
        (query + [f"df://127.0.0.1:{nobody}"], "cannot reach the scheduler"),
        (query + [f"http://127.0.0.1:{nobody}"], "expected df://HOST:PORT"),
        (query + [f"df://127.0.0.1:{nobody}/jobs?x=1"], "expected df://HOST:PORT"),
        (["env", "CANON_CLUSTER_TIMEOUT=18446744073709551615"] + query
         + [f"df://127.0.0.1:{nobody}"], "expected a whole number of seconds from 1"),
    ]
    failures = []
    for command, expected in cases:
        out = subprocess.run(command, env=loop.env, capture_output=True, text=True, timeout=60)
        if out.returncode != 2 or expected not in out.stderr:
            failures.append(f"{' '.join(command)}: exit {out.returncode}, {out.stderr[-300:]}")
    taken.close()
    print(f"{'refusals':15} {len(cases) - len(failures)} of {len(cases)} clear")
    return failures


def log_mark(loop: Loopback) -> int:
    """Where the cluster's log ends now."""
    loop.log.flush()
    return os.path.getsize(os.path.join(loop.work, "cluster.log"))


def what_the_cluster_said(loop: Loopback, mark: int, lines: int = 60) -> str:
    """The warnings, errors and job events the cluster logged since
    `mark`: what CI prints when a trial hangs."""
    loop.log.flush()
    with open(os.path.join(loop.work, "cluster.log"), errors="replace") as log:
        log.seek(mark)
        said = [line.rstrip()[:400] for line in log
                if any(k in line for k in (" WARN ", " ERROR ", "Removing executor",
                                           "Job cancelled", "Roll back", "Reset "))]
    return "\n".join(said[-lines:])


def what_the_job_said(loop: Loopback, mark: int) -> str:
    """Everything the cluster logged since `mark`."""
    loop.log.flush()
    with open(os.path.join(loop.work, "cluster.log"), errors="replace") as log:
        log.seek(mark)
        return log.read()


def harmed_run(loop: Loopback, cluster_canon: str, command: list, delay: float, harm,
               limit: int, what: str, failures: list):
    """Starts a cluster, warms it up with `command`, runs `command` on it
    again and calls `harm(loop)` `delay` s into that run; waits up to
    `limit` s (a run still waiting then is killed and counted a failure,
    with what the client and the cluster said printed). Returns the run's
    exit code, stdout, stderr, its seconds and the scheduler's port; the
    cluster is left up for the caller to stop."""
    scheduler = loop.start_cluster(cluster_canon)
    run = [cluster_canon, "--project", ROOT, *command, "--data", BUCKET_URL,
           "--cluster", f"df://127.0.0.1:{scheduler}"]
    subprocess.run(run, env=loop.env, capture_output=True, timeout=300)
    t = time.time()
    mark = log_mark(loop)
    query = subprocess.Popen(run, env=loop.env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    harm(loop)
    try:
        out, err = query.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        query.kill()
        out, err = query.communicate()
        failures.append(f"{what}: the run still waits after {limit} s")
        print(f"{what}: the run still waits; the client said:\n{err[-2000:]}\n"
              f"the cluster said:\n{what_the_cluster_said(loop, mark)}")
    return query.returncode, out, err, time.time() - t, scheduler


def kills(loop: Loopback, cluster_canon: str, plain_canon: str) -> list:
    """Executors killed: runs fail clearly or give the local number, never
    another number. Each trial on a cluster of its own, after a warm-up."""
    failures = []
    # Killed between jobs: Ballista finds it gone when it launches the next
    # job's tasks, removes it and reruns them elsewhere; canon's scheduler
    # refuses that job's answer, the client runs the job again from the
    # start (once), and the clean rerun answers, with a warning.
    t = time.time()
    command = ["query", "bookings", "--period", PERIOD, "--format", "json"]
    local = subprocess.run([plain_canon, "--project", ROOT, *command, "--data",
                            os.path.join(ROOT, "sample_data")], env=loop.env,
                           capture_output=True, text=True, timeout=300)
    expected = json.loads(local.stdout)["value"]
    bookings = expected
    scheduler = loop.start_cluster(cluster_canon)
    run = [cluster_canon, "--project", ROOT, *command, "--data", BUCKET_URL,
           "--cluster", f"df://127.0.0.1:{scheduler}"]
    subprocess.run(run, env=loop.env, capture_output=True, timeout=300)
    loop.executors[0].kill()
    loop.executors[0].wait()
    rerun = subprocess.run(run, env=loop.env, capture_output=True, text=True, timeout=300)
    loop.stop_cluster()
    said = "canon refused its answer and runs the job again from the start"
    value = json.loads(rerun.stdout).get("value") if rerun.returncode == 0 else None
    if value != expected or said not in rerun.stderr:
        failures.append(f"killed between jobs: exit {rerun.returncode}, {value} for {expected}, "
                        f"{'warned' if said in rerun.stderr else 'no warning of the refusal'}: "
                        f"{rerun.stderr[-600:]}")
    print(f"{'killed between':15} refused, run again: {value} (local {expected})"
          f"  ({time.time() - t:.1f} s)")

    # Killed mid-query.
    command = ["query", "grr", "--as-of", "2025-12-31", "--format", "json"]
    local = subprocess.run([plain_canon, "--project", ROOT, *command, "--data",
                            os.path.join(ROOT, "sample_data")], env=loop.env,
                           capture_output=True, text=True, timeout=300)
    expected = json.loads(local.stdout)["value"]
    seen = []
    # Killed, or frozen (SIGSTOP: its port still accepts connections and
    # answers nothing, so tasks on the other executor that fetch its
    # output are still running when it is counted lost, 30 s later: the
    # case in which Ballista's rollback leaked the other executor's slot).
    harms = {"killed": lambda loop: loop.executors[0].kill(),
             "frozen": lambda loop: loop.executors[0].send_signal(signal.SIGSTOP)}
    for how, delay in [("killed", 3.0), ("killed", 4.0), ("frozen", 3.0)]:
        code, out, err, took, scheduler = harmed_run(
            loop, cluster_canon, command, delay, harms[how], 300,
            f"executor {how} at {delay} s", failures)
        # The executor left still takes work. Ballista 55 rolling back a
        # stage that ran on it leaked its one task slot, and every later
        # job on this cluster waited forever (CI at 84284d8); canon's
        # scheduler cancels the running jobs when an executor is lost.
        left = [cluster_canon, "--project", ROOT, "query", "bookings", "--period", PERIOD,
                "--format", "json", "--data", BUCKET_URL,
                "--cluster", f"df://127.0.0.1:{scheduler}"]
        try:
            after = subprocess.run(left, env=dict(loop.env, CANON_CLUSTER_TIMEOUT="120"),
                                   capture_output=True, text=True, timeout=300)
            answered = json.loads(after.stdout).get("value") if after.returncode == 0 else None
            if answered != bookings:
                failures.append(f"executor {how} at {delay} s: the executor left then answered "
                                f"bookings {answered} for {bookings}: {after.stderr[-600:]}")
        except subprocess.TimeoutExpired:
            failures.append(f"executor {how} at {delay} s: the executor left answers no job")
        loop.stop_cluster()
        value = json.loads(out).get("value") if code == 0 and out.strip() else None
        seen.append(f"{how} {delay} s: " + ("failed" if value is None else str(value))
                    + f" in {took:.0f} s")
        if value is not None and value != expected:
            failures.append(f"executor {how} at {delay} s: grr {value}, locally {expected}")
        if value is None and "the cluster failed" not in err:
            failures.append(f"executor {how} at {delay} s: unclear failure: {err[-600:]}")
    print(f"{'lost mid-job':15} {', '.join(seen)} (local {expected})")

    # Every executor killed mid-query: nothing is left to run a job again,
    # so the run fails as the cluster's failure once Ballista's grace for
    # an executor to come back (30 s) has passed, not at the deadline.
    def kill_every_executor(loop):
        for executor in loop.executors:
            executor.kill()
    code, out, err, took, _ = harmed_run(loop, cluster_canon, command, 3.0,
                                         kill_every_executor, 200, "every executor killed",
                                         failures)
    loop.stop_cluster()
    clear = code == 1 and "error: the cluster failed" in err
    print(f"{'none left':15} exit {code} in {took:.0f} s, "
          f"{'a cluster failure' if clear else 'UNCLEAR'}")
    if not clear and code is not None and code >= 0:
        failures.append(f"every executor killed: exit {code}, {err[-600:]}")

    # The scheduler killed mid-query: the client's connection breaks; a
    # cluster failure, not an engine error placed in grr's definition.
    code, out, err, _, _ = harmed_run(loop, cluster_canon, command, 2.0,
                                      lambda loop: loop.cluster[0].kill(), 90,
                                      "scheduler killed", failures)
    loop.stop_cluster()
    value = json.loads(out).get("value") if code == 0 and out.strip() else None
    clear = value == expected or (code == 1 and "error: the cluster failed" in err
                                  and "customers.yaml" not in err)
    print(f"{'scheduler killed':15} exit {code}, "
          f"{'a cluster failure' if clear else 'UNCLEAR'}")
    if not clear:
        failures.append(f"scheduler killed mid-job: exit {code}, {err[-600:]}")
    return failures


def main() -> None:
    args = sys.argv[1:]
    metrics = list(METRICS)
    while "--metric" in args:
        i = args.index("--metric")
        metrics.append(args[i + 1])
        del args[i : i + 2]
    cluster_canon = os.path.abspath(args[0])
    plain_canon = os.path.abspath(args[1]) if len(args) > 1 else cluster_canon
    started = time.time()
    with Loopback(os.path.join(ROOT, "sample_data")) as loop:
        env = loop.env
        scheduler = loop.start_cluster(cluster_canon)
        print(f"cluster up in {time.time() - started:.1f} s (scheduler :{scheduler}, 2 executors)")

        def run(canon: str, args: list, remote: bool) -> dict:
            data = ["--data", BUCKET_URL, "--cluster", f"df://127.0.0.1:{scheduler}"] \
                if remote else ["--data", os.path.join(ROOT, "sample_data")]
            out = subprocess.run(
                [canon, "--project", ROOT, *args, "--format", "json", *data],
                env=env, capture_output=True, text=True, timeout=300,
            )
            if out.returncode != 0:
                where = "cluster" if remote else "local"
                sys.exit(f"{where} run of {' '.join(args)} failed:\n{out.stderr}")
            return json.loads(out.stdout)

        failures = []
        for metric in metrics:
            t = time.time()
            local = run(plain_canon, ["query", metric, "--period", PERIOD], False)
            remote = run(cluster_canon, ["query", metric, "--period", PERIOD], True)
            a, b = numbers(local), numbers(remote)
            status = "same" if a == b else "DIFFERENT"
            print(f"{metric:15} {a['value']:>20} local  {b['value']:>20} cluster  {status}"
                  f"  ({time.time() - t:.1f} s)")
            if a != b:
                failures.append(f"{metric}: local {a} vs cluster {b}")
        t = time.time()
        command = ["reconcile", "bookings_to_revenue", "--period", PERIOD]
        local, remote = run(plain_canon, command, False), run(cluster_canon, command, True)
        keys = ["bridge", "check", "deals", "lines", "match_rates", "deal_match_rates"]
        same = all(local.get(k) == remote.get(k) for k in keys)
        lines = len(local.get("bridge") or [])
        if lines == 0 or not local.get("deals"):
            failures.append("bridge: the local run gave no bridge lines or deals to compare")
        print(f"{'bridge':15} {lines:>17} lines, {'same' if same else 'DIFFERENT'}"
              f"  ({time.time() - t:.1f} s)")
        if not same:
            failures.append(f"bridge: local {local.get('bridge')} vs cluster {remote.get('bridge')}")
        t = time.time()
        published = {}
        for where, remote in [("local", False), ("cluster", True)]:
            out = os.path.join(loop.work, f"published-{where}")
            command = ["publish", "--out", out, "--period", PERIOD, "--only", "bookings",
                       "--only", "nrr", "--only", "bookings_to_revenue"]
            cluster = ["--cluster", f"df://127.0.0.1:{scheduler}"] if remote else []
            done = subprocess.run(
                [cluster_canon, "--project", ROOT, *command, "--data", BUCKET_URL, *cluster],
                env=env, capture_output=True, text=True, timeout=600,
            )
            if done.returncode != 0:
                sys.exit(f"{where} publish failed:\n{done.stderr}")
            published[where] = published_files(out)
        a, b = published["local"], published["cluster"]
        same = a == b and len(a) > 3
        print(f"{'publish':15} {len(a):>17} files, {'same' if same else 'DIFFERENT'}"
              f"  ({time.time() - t:.1f} s)")
        if not same:
            failures.append(f"publish: files differ: {sorted(set(a.items()) ^ set(b.items()))}")
        failures += guards(loop, cluster_canon, plain_canon, scheduler)
        failures += refusals(cluster_canon, loop)
        # An executor sent SIGTERM shuts down as Ballista's does (tells the
        # scheduler, drains its tasks, exits 0): the client's interrupt
        # handler (src/cluster/interrupt.rs) is not installed in it.
        executor = loop.cluster[-1]
        executor.send_signal(signal.SIGTERM)
        try:
            status = executor.wait(timeout=60)
        except subprocess.TimeoutExpired:
            status = "still running after 60 s"
        print(f"{'executor TERM':15} exit {status}")
        if status != 0:
            failures.append(f"an executor sent SIGTERM: exit {status}, expected 0 (graceful)")
        loop.stop_cluster()
        failures += kills(loop, cluster_canon, plain_canon)
        scheduler = loop.start_cluster(cluster_canon)
        # A versioned bucket: HEAD gives versions its listing does not.
        t = time.time()
        versioned = loop.versioned_bucket("acme-versioned")
        remote = subprocess.run(
            [cluster_canon, "--project", ROOT, "query", "bookings", "--period", PERIOD,
             "--format", "json", "--data", versioned, "--cluster", f"df://127.0.0.1:{scheduler}"],
            env=env, capture_output=True, text=True, timeout=300)
        value = json.loads(remote.stdout).get("value") if remote.returncode == 0 else None
        expected = run(plain_canon, ["query", "bookings", "--period", PERIOD], False)["value"]
        print(f"{'versioned':15} {str(value):>20} cluster  {expected:>20} local  "
              f"{'same' if value == expected else 'DIFFERENT'}  ({time.time() - t:.1f} s)")
        if value != expected:
            failures.append(f"a versioned bucket: exit {remote.returncode}, {remote.stderr[-600:]}")
        # A cluster's number is never cached, so never served to a local run.
        cache = os.path.join(loop.work, "cache")
        cached = subprocess.run(
            [cluster_canon, "--project", ROOT, "query", "bookings", "--period", PERIOD,
             "--data", BUCKET_URL, "--cluster", f"df://127.0.0.1:{scheduler}", "--cache-dir",
             cache], env={k: v for k, v in env.items() if k != "CANON_NO_CACHE"},
            capture_output=True, text=True, timeout=300)
        written = [f for _, _, files in os.walk(cache) for f in files]
        print(f"{'cache':15} {len(written)} files written by a cluster run (exit {cached.returncode})")
        if cached.returncode != 0 or written:
            failures.append(f"a cluster run wrote the cache: {written} {cached.stderr[-300:]}")
        if failures:
            print(loop.log_tail())
            sys.exit("the cluster check failed:\n" + "\n".join(failures))
    print(f"cluster check passed in {time.time() - started:.1f} s")


if __name__ == "__main__":
    main()
