"""moto's S3 server on 127.0.0.1 and a free port, for the file tests.

Prints `listening http://127.0.0.1:<port>` once it accepts requests, and stops when its
standard input closes (the test that started it ended, however it ended).
"""
import logging
import sys

from moto.server import ThreadedMotoServer


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request lines in the test output
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    print(f"listening http://{host}:{port}", flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
