#!/usr/bin/env python3
"""Upload throughput to the S3 emulator (moto): a file of BENCH_UPLOAD_MB (default 1024) stored by
the worker's S3 backend (`egress storage upload`, multipart with parallel parts) against curl
PUTting the same file to the same emulator in one request. Prints MB/s for both and the ratio.
"""
import json, os, socket, subprocess, sys, tempfile, time

SIZE_MB = int(os.environ.get("BENCH_UPLOAD_MB", "1024"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port):
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit("moto did not start")


def timed(command):
    start = time.monotonic()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - start


def main():
    binary, moto = sys.argv[1], sys.argv[2]
    port = free_port()
    server = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(port)
        endpoint = f"http://127.0.0.1:{port}"
        subprocess.run(["curl", "-sf", "-X", "PUT", f"{endpoint}/bench-bucket"], check=True)
        with tempfile.TemporaryDirectory() as work:
            data = os.path.join(work, "upload.bin")
            with open(data, "wb") as f:
                for _ in range(SIZE_MB):
                    f.write(os.urandom(1024 * 1024))
            storage = os.path.join(work, "storage.json")
            with open(storage, "w") as f:
                json.dump({"storage_type": "s3", "bucket": "bench-bucket", "aws_s3": {
                    "s3_region": "us-east-1", "s3_api_key": "AKIDBENCH", "s3_secret": "bench",
                    "s3_custom_endpoint_url": endpoint}}, f)
            curl = timed(["curl", "-sf", "-H", "Expect:", "-T", data,
                          f"{endpoint}/bench-bucket/curl.bin"])
            worker = timed([binary, "storage", "upload", storage, data, "worker.bin"])
    finally:
        server.kill()
    print(f"upload of {SIZE_MB} MB to moto on loopback")
    print(f"curl PUT (one request)        : {SIZE_MB / curl:7.1f} MB/s ({curl:.1f} s)")
    print(f"worker (multipart, 4 parallel): {SIZE_MB / worker:7.1f} MB/s ({worker:.1f} s)")
    print(f"ratio worker/curl             : {curl / worker:.2f}")


if __name__ == "__main__":
    main()
