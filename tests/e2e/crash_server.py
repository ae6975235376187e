"""The server of the crash test: it imports the application once, binds the port once, and on
each `start` line forks two worker processes that serve the real app (uvicorn, the settings of
the environment) on that shared socket, as uvicorn's own multi-worker mode does. A restart then
costs a fork rather than an interpreter start, so that many SIGKILL rounds fit in CI's time.

Protocol on stdin/stdout: `start` -> `pids <pid> <pid>`; `quit` ends it. The test SIGKILLs the
workers itself.
"""

from __future__ import annotations

import os
import socket
import sys

import uvicorn

import backend.main  # noqa: F401  (imported before forking: the point of this harness)

WORKERS = 2


def serve(sock: socket.socket) -> None:
    config = uvicorn.Config(
        "backend.main:create_app", factory=True, access_log=False, log_level="warning"
    )
    uvicorn.Server(config).run(sockets=[sock])


def reap() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def main() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", int(sys.argv[1])))
    sock.listen(128)
    sock.set_inheritable(True)
    for line in sys.stdin:
        reap()
        if line.strip() == "quit":
            break
        pids = []
        for _ in range(WORKERS):
            pid = os.fork()
            if pid == 0:
                try:
                    # stdout carries the protocol: a worker writes nothing there.
                    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
                    serve(sock)
                finally:
                    os._exit(0)
            pids.append(pid)
        print("pids", *pids, flush=True)


if __name__ == "__main__":
    main()
