"""An S3-compatible server on loopback for canon's object-store tests (moto).

    s3_server.py open DATA_DIR BUCKET PREFIX
        Any credentials are accepted. Creates BUCKET and uploads the files of
        DATA_DIR under PREFIX.
    s3_server.py locked
        Every request is checked against moto's IAM, which knows no user, so
        every access key is refused (InvalidAccessKeyId): what a run with
        wrong credentials meets.

Starts moto's server on a free port of 127.0.0.1, prints one JSON line
({"endpoint": ...}) on stdout when ready, and serves until its stdin
closes (the test that started it ended, or was killed).

Why not one server that checks signatures and knows a user: moto 5.2
checks a signature over the query string as it decodes it (`prefix=a/b`,
where SigV4 signs `prefix=a%2Fb`), so it refuses every correctly signed
LIST with a prefix. Reads under real signature checks are left to a real
S3 (README, "Data in object stores").
"""

import json
import os
import sys

MODE = sys.argv[1] if len(sys.argv) > 1 else ""
if MODE == "locked":
    os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

import boto3  # noqa: E402  (moto brings it)
from moto.server import ThreadedMotoServer  # noqa: E402


def main() -> None:
    if MODE not in ("open", "locked"):
        sys.exit(__doc__)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    if MODE == "open":
        data, bucket, prefix = sys.argv[2], sys.argv[3], sys.argv[4].strip("/")
        s3 = boto3.client(
            "s3", endpoint_url=endpoint, aws_access_key_id="canon", aws_secret_access_key="canon"
        )
        s3.create_bucket(Bucket=bucket)
        for folder, _, files in os.walk(data):
            for name in sorted(files):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, data).replace(os.sep, "/")
                s3.upload_file(path, bucket, f"{prefix}/{rel}" if prefix else rel)
    print(json.dumps({"endpoint": endpoint}), flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
