#!/usr/bin/env python3
"""Upload throughput to the three storage emulators on loopback: a file of BENCH_UPLOAD_MB
(default 1024) stored by the worker's backend (`egress storage upload`) against curl sending the
same file to the same emulator in one request. Prints MB/s for both and the ratio per backend.

Run with the Python of the tests' virtual environment (it has the Azure SDK, which signs the
SAS curl uses for Azurite). Arguments: the egress binary and the cache folder. The CPU seconds of
each client are printed too: gcp-storage-emulator appends every chunk of a resumable upload to a
copy of all it holds, so the worker's chunked GCS upload is bound by the emulator, not the worker.
"""
import base64, json, os, random, resource, socket, subprocess, sys, tempfile, time

SIZE_MB = int(os.environ.get("BENCH_UPLOAD_MB", "1024"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(host, port, name):
    for _ in range(300):
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"{name} did not start")


def timed(command):
    """Wall seconds and CPU seconds (user + system) of a command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(name, binary, work, storage, data, curl_command):
    path = os.path.join(work, f"{name}.json")
    with open(path, "w") as f:
        json.dump(storage, f)
    curl, curl_cpu = timed(["curl", "-sf", "-o", "/dev/null", "-H", "Expect:"] + curl_command)
    worker, worker_cpu = timed([binary, "storage", "upload", path, data, "worker.bin"])
    print(f"{name:4}: curl {SIZE_MB / curl:6.1f} MB/s ({curl:5.1f} s, {curl_cpu:4.1f} CPU s), "
          f"worker {SIZE_MB / worker:6.1f} MB/s ({worker:5.1f} s, {worker_cpu:4.1f} CPU s), "
          f"ratio worker/curl {curl / worker:.2f}", flush=True)


def s3(binary, cache, work, data):
    port = free_port()
    server = subprocess.Popen([f"{cache}/venv/bin/moto_server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for("127.0.0.1", port, "moto")
        endpoint = f"http://127.0.0.1:{port}"
        subprocess.run(["curl", "-sf", "-X", "PUT", f"{endpoint}/bench"], check=True)
        storage = {"storage_type": "s3", "bucket": "bench", "aws_s3": {
            "s3_region": "us-east-1", "s3_api_key": "AKIDBENCH", "s3_secret": "bench",
            "s3_custom_endpoint_url": endpoint}}
        measure("s3", binary, work, storage, data, ["-T", data, f"{endpoint}/bench/curl.bin"])
    finally:
        server.kill()
        server.wait()


def gcs(binary, cache, work, data):
    # Port 80 of an address of its own: the GCS client sends Host without a port.
    host = f"127.78.{random.randint(1, 254)}.{random.randint(1, 254)}"
    server = subprocess.Popen([f"{cache}/venv/bin/gcp-storage-emulator", "start", "--host", host,
                               "--port", "80", "--in-memory", "-q"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(host, 80, "gcp-storage-emulator")
        endpoint = f"http://{host}"
        subprocess.run(["curl", "-sf", "-o", "/dev/null", "-X", "POST", "-H",
                        "Content-Type: application/json", "-d", '{"name": "bench"}',
                        f"{endpoint}/storage/v1/b?project=bench"], check=True)
        storage = {"storage_type": "gcs", "bucket": "bench", "gcs_endpoint_url": endpoint}
        measure("gcs", binary, work, storage, data,
                ["-X", "POST", "-T", data,
                 f"{endpoint}/upload/storage/v1/b/bench/o?uploadType=media&name=curl.bin"])
    finally:
        server.kill()
        server.wait()


def abs_(binary, cache, work, data):
    from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas
    import datetime
    port = free_port()
    key = base64.b64encode(os.urandom(64)).decode()
    env = dict(os.environ, AZURITE_ACCOUNTS=f"bench:{key}")
    server = subprocess.Popen([f"{cache}/npm/node_modules/.bin/azurite-blob", "--blobHost", "127.0.0.1",
                               "--blobPort", str(port), "--inMemoryPersistence", "--skipApiVersionCheck",
                               "--disableTelemetry", "--silent"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_for("127.0.0.1", port, "azurite")
        endpoint = f"http://127.0.0.1:{port}/bench"
        connection = f"AccountName=bench;AccountKey={key};BlobEndpoint={endpoint};"
        BlobServiceClient.from_connection_string(connection).create_container("bench")
        sas = generate_container_sas("bench", "bench", account_key=key,
                                     permission=ContainerSasPermissions(write=True, create=True),
                                     expiry=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1))
        storage = {"storage_type": "abs", "bucket": "bench", "azure_blob": {
            "abs_account_name": "bench", "abs_account_key": key, "abs_endpoint_url": endpoint}}
        measure("abs", binary, work, storage, data,
                ["-X", "PUT", "-H", "x-ms-blob-type: BlockBlob", "-T", data,
                 f"{endpoint}/bench/curl.bin?{sas}"])
    finally:
        server.kill()
        server.wait()


def main():
    binary, cache = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as work:
        data = os.path.join(work, "upload.bin")
        with open(data, "wb") as f:
            for _ in range(SIZE_MB):
                f.write(os.urandom(1024 * 1024))
        print(f"upload of {SIZE_MB} MB to each emulator on loopback")
        for backend in (s3, gcs, abs_):
            backend(binary, cache, work, data)


if __name__ == "__main__":
    main()
