"""Uploads a folder of extracts to an Azure Blob Storage emulator (Azurite).

    azure_upload.py BLOB_ENDPOINT DATA_DIR CONTAINER PREFIX

BLOB_ENDPOINT is Azurite's blob URL with its account, e.g.
http://127.0.0.1:10000/devstoreaccount1. Creates CONTAINER with Azurite's
well-known development account and key, and uploads every file of DATA_DIR
under PREFIX. (object_store, which canon reads through, cannot create a
container.)
"""

import os
import sys

from azure.storage.blob import BlobServiceClient

# Azurite's published development account key (not a secret).
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def main() -> None:
    endpoint, data, container, prefix = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].strip("/")
    connection = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={KEY};BlobEndpoint={endpoint};"
    )
    client = BlobServiceClient.from_connection_string(connection).create_container(container)
    for folder, _, files in os.walk(data):
        for name in sorted(files):
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, data).replace(os.sep, "/")
            with open(path, "rb") as f:
                client.upload_blob(f"{prefix}/{rel}" if prefix else rel, f)


if __name__ == "__main__":
    main()
