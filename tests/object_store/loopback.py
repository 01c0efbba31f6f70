"""An S3-compatible bucket and a Ballista cluster of canon's on loopback, for
the cluster check in CI (.ci/cluster_test.py) and the scale measurements
(benches/scale.py).

    with Loopback(data_dir) as loop:          # moto, DATA_DIR under s3://acme/extracts
        loop.env                              # AWS_* for every process
        scheduler = loop.start_cluster(canon) # a scheduler and two executors
        ...
        loop.stop_cluster()                   # and start another

Every process started is stopped when the block ends, however it ends.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUCKET_URL = "s3://acme/extracts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int, what: str, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"{what} did not listen on {port} within {seconds} s")


def python_with_moto() -> str:
    """This machine's python when it has moto, else the tests' venv."""
    ok = subprocess.run(
        [sys.executable, "-c", "import moto.server, boto3"], stderr=subprocess.DEVNULL
    ).returncode == 0
    if ok:
        return sys.executable
    venv = os.path.join(ROOT, "target", "s3-venv")
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    subprocess.run([python, "-m", "pip", "install", "-q", "moto[server]==5.2.1"], check=True)
    return python


def peak_rss_mib(pid: int) -> float:
    """A live process's peak resident memory (VmHWM), in MiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Loopback:
    """moto serving `data_dir` under s3://acme/extracts, and the processes
    of a cluster started on it."""

    def __init__(self, data_dir: str):
        self.data_dir = data_dir
        self.work = tempfile.mkdtemp(prefix="canon-loopback-")
        self.procs = []
        self.cluster = []
        self.log = open(os.path.join(self.work, "cluster.log"), "w")

    def __enter__(self):
        self.python = python_with_moto()
        s3 = subprocess.Popen(
            [self.python, os.path.join(ROOT, "tests/object_store/s3_server.py"), "open",
             self.data_dir, "acme", "extracts"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        self.procs.append(s3)
        self.endpoint = json.loads(s3.stdout.readline())["endpoint"]
        self.env = dict(os.environ)
        for var in ["AWS_PROFILE", "AWS_SESSION_TOKEN", "CANON_DATA", "CANON_CLUSTER"]:
            self.env.pop(var, None)
        self.env.update(
            AWS_ENDPOINT_URL=self.endpoint, AWS_ACCESS_KEY_ID="canon",
            AWS_SECRET_ACCESS_KEY="canon", AWS_REGION="us-east-1", CANON_NO_CACHE="1",
        )
        return self

    def start_cluster(self, canon: str, executors: int = 2) -> int:
        """Starts a scheduler and `executors` executors (one task slot
        each) of `canon`; returns the scheduler's port."""
        scheduler = free_port()
        # The scheduler's log also says which jobs it cancelled and how many
        # of their tasks (Ballista's own lines, at info), for the checks that
        # a cancellation arrived.
        cancels = ("warn,ballista_scheduler::scheduler_server::query_stage_scheduler=info,"
                   "ballista_scheduler::state::task_manager=info")
        self.cluster.append(subprocess.Popen(
            [canon, "cluster", "scheduler", "--bind", f"127.0.0.1:{scheduler}"],
            env={**self.env, "RUST_LOG": cancels}, stdout=self.log, stderr=self.log,
        ))
        wait_for(scheduler, "the scheduler")
        for i in range(executors):
            flight, grpc = free_port(), free_port()
            self.cluster.append(subprocess.Popen(
                [canon, "cluster", "executor", "--scheduler", f"127.0.0.1:{scheduler}",
                 "--port", str(flight), "--grpc-port", str(grpc),
                 "--work-dir", os.path.join(self.work, f"executor-{scheduler}-{i}"),
                 "--cores", "1"],
                env=self.env, stdout=self.log, stderr=self.log,
            ))
            wait_for(flight, f"executor {i}")
        time.sleep(2)  # the executors register with the scheduler
        return scheduler

    @property
    def executors(self) -> list:
        return self.cluster[1:]

    def stop_cluster(self) -> None:
        for p in reversed(self.cluster):
            p.kill()
            p.wait()
        self.cluster = []

    def upload(self, path: str, key: str) -> None:
        """Writes the file at `path` to s3://acme/`key`."""
        subprocess.run([self.python, "-c", (
            "import boto3, sys; boto3.client('s3', endpoint_url=sys.argv[1], "
            "aws_access_key_id='canon', aws_secret_access_key='canon', region_name='us-east-1')"
            ".upload_file(sys.argv[2], 'acme', sys.argv[3])"), self.endpoint, path, key],
            check=True)

    def versioned_bucket(self, bucket: str) -> str:
        """`bucket`, with versioning on, holding the data under `extracts`
        as s3://acme does; returns its data root URL."""
        subprocess.run([self.python, "-c", (
            "import boto3, os, sys\n"
            "s3 = boto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id='canon',"
            " aws_secret_access_key='canon', region_name='us-east-1')\n"
            "s3.create_bucket(Bucket=sys.argv[2])\n"
            "s3.put_bucket_versioning(Bucket=sys.argv[2],"
            " VersioningConfiguration={'Status': 'Enabled'})\n"
            "for folder, _, files in os.walk(sys.argv[3]):\n"
            "    for name in files:\n"
            "        path = os.path.join(folder, name)\n"
            "        key = 'extracts/' + os.path.relpath(path, sys.argv[3])\n"
            "        s3.upload_file(path, sys.argv[2], key)\n"),
            self.endpoint, bucket, self.data_dir], check=True)
        return f"s3://{bucket}/extracts"

    def log_tail(self, chars: int = 4000) -> str:
        self.log.flush()
        return open(os.path.join(self.work, "cluster.log")).read()[-chars:]

    def __exit__(self, *_):
        self.stop_cluster()
        for p in reversed(self.procs):
            p.kill()
            p.wait()
        self.log.close()
        shutil.rmtree(self.work, ignore_errors=True)
