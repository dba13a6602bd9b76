"""The scoring server, over real HTTP against real server processes.

Every server here is ``python -m mlmagic.serve`` in a subprocess on 127.0.0.1, run from a
copy of ``mlmagic/serve/`` alone (with an empty ``mlmagic/__init__.py``), as it runs in an
inference image: a test passes only if the package needs nothing else from mlmagic.
Requests are made with ``http.client``; nothing is mocked. Synchronisation uses files the
entry scripts touch or wait for, never sleeps or wall-clock bounds.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SERVE_SOURCE = Path(__file__).resolve().parents[2] / "mlmagic" / "serve"

SCORE = """
import json
import os
import pathlib
import time

import helper  # beside this script: its folder must be on sys.path

weights = None


class Vector:
    def __init__(self, values):
        self.values = values

    def tolist(self):
        return list(self.values)


def init():
    global weights
    model_dir = pathlib.Path(os.environ["MLMAGIC_MODEL_DIR"])
    weights = json.loads((model_dir / "weights.json").read_text())["w"]


def run(raw_data):
    data = json.loads(raw_data)
    if "x" in data:
        return {"y": helper.dot(weights, data["x"]), "pid": os.getpid()}
    if "fail" in data:
        raise ValueError(data["fail"])
    if "block" in data:
        pathlib.Path(data["block"]).touch()
        deadline = time.monotonic() + 30
        while not os.path.exists(data["release"]) and time.monotonic() < deadline:
            time.sleep(0.01)
        return {"released": os.path.exists(data["release"])}
    if "cwd" in data:
        return {"cwd": os.getcwd()}
    if "bytes" in data:
        return data["bytes"].encode()
    if "text" in data:
        return data["text"]
    if "tolist" in data:
        return Vector(data["tolist"])
    if "nan" in data:
        return {"values": [float("nan"), float("inf"), 1.5], "vector": Vector([float("-inf")])}
    if "exit" in data:
        raise SystemExit(data["exit"])
    if "interrupt" in data:
        raise KeyboardInterrupt
    return object()
"""

HELPER = """
def dot(a, b):
    return sum(x * y for x, y in zip(a, b))
"""


@dataclass
class Server:
    """A running ``python -m mlmagic.serve`` and what it wrote."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request; a POST is JSON unless ``headers`` say otherwise."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        sent = {"Content-Type": "application/json"} if method == "POST" else {}
        sent.update(headers or {})
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            found = {name.lower(): value for name, value in response.getheaders()}
            return response.status, found, response.read()
        finally:
            connection.close()

    def score(self, payload: object, path: str = "/score", **headers: str) -> tuple[int, object]:
        status, _, body = self.request("POST", path, json.dumps(payload).encode(), headers)
        return status, json.loads(body)

    def answers(self, headers: dict[str, str] | None = None) -> int | None:
        """The status of ``GET /``, or ``None`` while nothing listens yet."""
        try:
            return self.request("GET", "/", headers=headers)[0]
        except (ConnectionError, http.client.HTTPException):
            return None

    def wait_healthy(self) -> None:
        wait_until(lambda: self.answers() == 200, self, "GET / to answer 200")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def wait_until(condition: Callable[[], bool], server: Server, what: str) -> None:
    """Poll ``condition``; fail with the server's output if it exits or 20 s pass."""
    deadline = time.monotonic() + 20
    while not condition():
        if server.process.poll() is not None:
            pytest.fail(f"the server exited ({server.process.returncode}):\n{server.output()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; server output:\n{server.output()}")
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def vendored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding ``mlmagic/serve`` and nothing else of mlmagic."""
    root = tmp_path_factory.mktemp("vendored")
    shutil.copytree(
        SERVE_SOURCE, root / "mlmagic" / "serve", ignore=shutil.ignore_patterns("__pycache__")
    )
    (root / "mlmagic" / "__init__.py").write_text("")
    return root


def launch(
    vendored: Path, folder: Path, script: str, *args: str, env: dict[str, str] | None = None
) -> Server:
    """Write ``score.py`` (and its helper and model) into ``folder`` and start a server on it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "score.py").write_text(textwrap.dedent(script))
    (folder / "helper.py").write_text(HELPER)
    model_dir = folder / "model"
    model_dir.mkdir(exist_ok=True)
    (model_dir / "weights.json").write_text(json.dumps({"w": [0.5, -1.0, 2.0]}))
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLMAGIC_")}
    environment.update(PYTHONPATH=str(vendored), MLMAGIC_MODEL_DIR=str(model_dir), **(env or {}))
    port = free_port()
    log = folder / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlmagic.serve",
                "--entry",
                "score.py",
                "--port",
                str(port),
                *args,
            ],
            cwd=folder,
            env=environment,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    return Server(process, port, log)


@pytest.fixture
def start(vendored: Path, tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start servers for one test; each is stopped, by its PID, when the test ends."""
    servers: list[Server] = []

    def start(script: str, *args: str, env: dict[str, str] | None = None) -> Server:
        server = launch(vendored, tmp_path / f"server{len(servers)}", script, *args, env=env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


#: The HTTP stacks uvicorn can run the app on here: plain uvicorn's, and uvicorn[standard]'s.
STACKS = [("h11", "asyncio")]
if importlib.util.find_spec("httptools") and importlib.util.find_spec("uvloop"):
    STACKS.append(("httptools", "uvloop"))


@pytest.fixture(scope="module", params=STACKS, ids=[http for http, _ in STACKS])
def server(
    vendored: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Server]:
    """One healthy server on :data:`SCORE` per HTTP stack, shared by the tests that do not
    change it."""
    http, loop = request.param
    folder = tmp_path_factory.mktemp("shared")
    started = launch(
        vendored,
        folder,
        SCORE,
        "--http",
        http,
        "--loop",
        loop,
        env={"MLMAGIC_THREADS": "4", "MLMAGIC_MAX_BODY_BYTES": "100000"},
    )
    try:
        started.wait_healthy()
        yield started
    finally:
        started.stop()


def test_health_routes_answer_healthy(server: Server) -> None:
    assert server.request("GET", "/")[::2] == (200, b"Healthy")
    assert server.request("GET", "/ping")[::2] == (200, b"Healthy")
    assert server.request("HEAD", "/")[::2] == (200, b"")


def test_score_uses_the_model_that_init_loaded(server: Server) -> None:
    status, headers, body = server.request("POST", "/score", b'{"x": [1, 2, 3]}')
    assert (status, headers["content-type"]) == (200, "application/json")
    assert json.loads(body)["y"] == 0.5 - 2.0 + 6.0


def test_invocations_is_score(server: Server) -> None:
    assert server.score({"x": [2, 0, 0]}, "/invocations")[1]["y"] == 1.0  # type: ignore[index]


def test_run_runs_in_the_folder_of_the_script(server: Server) -> None:
    status, result = server.score({"cwd": True})
    assert status == 200
    assert Path(result["cwd"]).resolve() == server.log.parent.resolve()  # type: ignore[index]


def test_results_are_sent_as_json_or_as_bytes(server: Server) -> None:
    assert server.score({"text": "a string"}) == (200, "a string")
    assert server.score({"tolist": [1, 2]}) == (200, [1, 2])
    status, headers, body = server.request("POST", "/score", b'{"bytes": "raw"}')
    assert (status, headers["content-type"], body) == (200, "application/octet-stream", b"raw")
    status, error = server.score({"unencodable": True})
    assert status == 500
    assert "not JSON-serialisable" in error["error"]  # type: ignore[index]


@pytest.mark.parametrize(
    "body",
    [b"not json", b"", b'{"x": [1,', b"\xff\xfe", b"[" * 40_000 + b"]" * 40_000],
    ids=["text", "empty", "cut", "not-utf8", "too-deep"],
)
def test_a_body_that_is_not_json_is_400(server: Server, body: bytes) -> None:
    status, headers, answer = server.request("POST", "/score", body)
    assert (status, headers["content-type"]) == (400, "application/json")
    assert json.loads(answer)["error"].startswith("The request body is not valid JSON")


def test_an_exception_in_run_is_500_and_its_traceback_is_logged(server: Server) -> None:
    assert server.score({"fail": "boom-4711"}) == (500, {"error": "ValueError: boom-4711"})
    wait_until(
        lambda: (
            "Traceback" in server.output() and 'raise ValueError(data["fail"])' in server.output()
        ),
        server,
        "the traceback in the log",
    )


def test_an_oversized_body_is_413(server: Server) -> None:
    status, _, body = server.request("POST", "/score", b'"' + b"a" * 100_000 + b'"')
    assert status == 413
    assert "larger than 100000 bytes" in json.loads(body)["error"]


def test_unknown_route_is_404(server: Server) -> None:
    status, _, body = server.request("GET", "/nowhere")
    assert status == 404
    assert "/nowhere" in json.loads(body)["error"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [("GET", "/score", "POST"), ("DELETE", "/invocations", "POST"), ("POST", "/", "GET, HEAD")],
)
def test_wrong_method_is_405(server: Server, method: str, path: str, allowed: str) -> None:
    status, headers, body = server.request(method, path)
    assert (status, headers["allow"]) == (405, allowed)
    assert "error" in json.loads(body)


def test_swagger_json_is_an_openapi_3_document_of_the_routes(server: Server) -> None:
    status, _, body = server.request("GET", "/swagger.json")
    document = json.loads(body)
    assert status == 200
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {"/", "/ping", "/score", "/invocations", "/swagger.json"}
    assert "post" in document["paths"]["/score"]
    refusals = {"408", "413", "415", "421", "503"}
    assert refusals <= set(document["paths"]["/score"]["post"]["responses"])
    assert "securitySchemes" not in document["components"]


def test_a_slow_run_blocks_neither_health_nor_other_requests(
    server: Server, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    results: dict[str, tuple[int, object]] = {}

    def blocking(name: str) -> threading.Thread:
        payload = {"block": str(tmp_path / name), "release": str(release)}
        thread = threading.Thread(target=lambda: results.update({name: server.score(payload)}))
        thread.start()
        wait_until((tmp_path / name).exists, server, f"run() of request {name} to start")
        return thread

    first = blocking("first")
    assert server.request("GET", "/ping")[0] == 200
    second = blocking("second")  # a second run() starts while the first is still in it
    assert server.score({"x": [1, 1, 1]})[0] == 200
    assert first.is_alive() and second.is_alive()
    release.touch()
    first.join(30)
    second.join(30)
    assert results == {"first": (200, {"released": True}), "second": (200, {"released": True})}


def test_health_is_503_until_init_finishes(start: Callable[..., Server], tmp_path: Path) -> None:
    release = tmp_path / "release-init"
    server = start(
        f"""
        import os, time
        def init():
            deadline = time.monotonic() + 30
            while not os.path.exists({str(release)!r}) and time.monotonic() < deadline:
                time.sleep(0.01)
        def run(raw_data):
            return "scored"
        """
    )
    wait_until(lambda: server.answers() is not None, server, "the server to listen")
    assert server.request("GET", "/")[::2] == (503, b"Initializing: init() has not finished")
    assert server.request("GET", "/ping")[0] == 503
    release.touch()
    server.wait_healthy()
    assert server.score("anything") == (200, "scored")


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize(
    ("script", "line"),
    [
        (
            "def init():\n    raise ValueError('no weights here')\ndef run(raw_data):\n    pass\n",
            "mlmagic-serve: init() failed: ValueError: no weights here",
        ),
        (
            "def init():\n    pass\n",
            "mlmagic-serve: loading score.py failed: EntryScriptError: ",
        ),
    ],
    ids=["init-raises", "no-run"],
)
def test_a_failing_init_ends_the_server(
    start: Callable[..., Server], script: str, line: str, workers: str
) -> None:
    server = start(script, "--workers", workers)
    try:
        returncode = server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the server is still running after init() failed:\n{server.output()}")
    assert returncode != 0
    assert line in server.output()
    assert "Traceback" in server.output()


def test_scoring_keys_guard_score_but_not_health(start: Callable[..., Server]) -> None:
    key = "s3cret-scoring-key"
    digests = ",".join(hashlib.sha256(k.encode()).hexdigest() for k in ("other-key", key))
    server = start(SCORE, env={"MLMAGIC_AUTH_KEYS_SHA256": digests})
    server.wait_healthy()
    assert server.request("GET", "/ping")[0] == 200
    status, headers, _ = server.request("POST", "/score", b'{"x": [1, 1, 1]}')
    assert (status, headers["www-authenticate"]) == (401, "Bearer")
    assert server.score({"x": [1, 1, 1]}, Authorization="Bearer wrong")[0] == 401
    assert server.score({"x": [1, 1, 1]}, "/invocations", Authorization=key)[0] == 401
    assert server.score({"x": [1, 1, 1]}, Authorization=f"Bearer {key}")[0] == 200
    assert (
        server.score({"x": [1, 1, 1]}, "/invocations", Authorization="Bearer other-key")[0] == 200
    )
    document = json.loads(server.request("GET", "/swagger.json")[2])
    assert document["paths"]["/score"]["post"]["security"] == [{"bearerKey": []}]
    output = server.output()
    assert "mlmagic-serve: " in output and key not in output


def test_malformed_key_digests_stop_the_server(start: Callable[..., Server]) -> None:
    server = start(SCORE, env={"MLMAGIC_AUTH_KEYS_SHA256": "not-a-digest"})
    assert server.process.wait(timeout=15) != 0
    assert "must hold comma-separated SHA-256 hex digests" in server.output()
    assert "not-a-digest" not in server.output()


@pytest.mark.parametrize(("http", "loop"), STACKS, ids=[http for http, _ in STACKS])
def test_two_workers_each_run_init(
    start: Callable[..., Server], tmp_path: Path, http: str, loop: str
) -> None:
    pids = tmp_path / "init-pids"
    server = start(
        SCORE.replace(
            "def init():", f"def init():\n    open({str(pids)!r}, 'a').write(f'{{os.getpid()}}\\n')"
        ),
        *("--workers", "2", "--http", http, "--loop", loop),
    )
    server.wait_healthy()
    wait_until(lambda: pids.exists() and len(set(pids.read_text().split())) == 2, server, "2 inits")
    answered = {server.score({"x": [1, 0, 0]})[1]["pid"] for _ in range(10)}  # type: ignore[index]
    assert answered <= {int(pid) for pid in pids.read_text().split()}


def test_a_missing_entry_script_is_a_usage_error(vendored: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mlmagic.serve", "--entry", "nothing.py"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(vendored)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "no entry script at" in result.stderr


def test_multi_worker_listeners_pass_on_tcp_nodelay(vendored: Path, tmp_path: Path) -> None:
    # uvicorn binds the socket of a multi-worker server with proto 0, so asyncio leaves
    # Nagle on for its connections (Kludex/uvicorn#3149); the listener must carry the fix.
    code = textwrap.dedent(
        """
        import socket, uvicorn
        from mlmagic.serve.__main__ import listen_without_nagle
        listen_without_nagle(uvicorn.Config)
        listen_without_nagle(uvicorn.Config)
        listener = uvicorn.Config("app:app", host="127.0.0.1", port=0).bind_socket()
        listener.listen()
        client = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()
        print(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(vendored)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "1"


# --- Bounds: what one client can make the server hold -------------------------------------


def raw(port: int, head: bytes) -> socket.socket:
    """A connection that has sent ``head`` (a request's start, perhaps incomplete)."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=30)
    connection.sendall(head)
    return connection


def answer(connection: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one response, to the end of its ``Content-Length``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        assert chunk, f"the server closed the connection after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    while len(body) < int(headers["content-length"]):
        body += connection.recv(65536)
    return int(lines[0].split()[1]), headers, body


def post_head(port: int, length: int, host: str = "127.0.0.1") -> bytes:
    return (
        f"POST /score HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def peak_rss_mib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) // 1024


LENGTH_SCORE = """
def init():
    pass

def run(raw_data):
    return len(raw_data)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_a_large_body_is_checked_without_building_it(start: Callable[..., Server]) -> None:
    server = start(LENGTH_SCORE)
    server.wait_healthy()
    body = b"[" + b",".join([b"[]"] * 4_000_000) + b"]"  # 12 MiB; json.loads: +275 MiB
    before = peak_rss_mib(server.process.pid)
    status, _, answer_body = server.request("POST", "/score", body)
    assert (status, json.loads(answer_body)) == (200, len(body))
    growth = peak_rss_mib(server.process.pid) - before
    assert growth < 120, f"one 12 MiB body grew the server by {growth} MiB"


def test_the_default_body_limit_is_16_mib_and_is_checked_before_reading(
    start: Callable[..., Server],
) -> None:
    server = start(LENGTH_SCORE)
    server.wait_healthy()
    with raw(server.port, post_head(server.port, 16 * 1024 * 1024 + 1)) as connection:
        status, headers, body = answer(connection)  # no body was sent: it was not awaited
    assert (status, headers["content-type"]) == (413, "application/json")
    assert "larger than 16777216 bytes" in json.loads(body)["error"]
    assert server.request("POST", "/score", b"[1]")[0] == 200


def test_a_chunked_body_is_cut_off_at_the_limit(server: Server) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    parts = (b"[" + b"0," * 10_000 for _ in range(100))  # 2 MB, over the 100000 limit
    try:
        connection.request(
            "POST", "/score", parts, {"Content-Type": "application/json"}, encode_chunked=True
        )
        response = connection.getresponse()
        status, body = response.status, response.read()
    except (BrokenPipeError, ConnectionResetError):
        pytest.fail("the server closed the connection without an answer")
    finally:
        connection.close()
    assert status == 413
    assert "larger than 100000 bytes" in json.loads(body)["error"]


def test_requests_in_flight_are_bounded(start: Callable[..., Server], tmp_path: Path) -> None:
    server = start(SCORE, env={"MLMAGIC_MAX_IN_FLIGHT": "2"})
    server.wait_healthy()
    release = tmp_path / "release"
    threads = []
    for name in ("first", "second"):
        payload = {"block": str(tmp_path / name), "release": str(release)}
        threads.append(threading.Thread(target=server.score, args=(payload,)))
        threads[-1].start()
        wait_until((tmp_path / name).exists, server, f"run() of request {name} to start")
    status, headers, body = server.request("POST", "/score", b'{"x": [1, 1, 1]}')
    assert (status, headers["retry-after"]) == (503, "1")
    assert "busy" in json.loads(body)["error"]
    assert server.request("GET", "/ping")[0] == 200  # health is not a scoring request
    release.touch()
    for thread in threads:
        thread.join(30)
    assert server.score({"x": [1, 1, 1]})[0] == 200


def test_large_bodies_in_flight_are_bounded_by_their_bytes(start: Callable[..., Server]) -> None:
    # The limit is 1 MB, so one worker buffers 4 MB at most; 3.9 MB are announced here.
    server = start(LENGTH_SCORE, env={"MLMAGIC_MAX_BODY_BYTES": "1000000"})
    server.wait_healthy()
    sizes = [1_000_000, 1_000_000, 1_000_000, 900_000]
    waiting = [raw(server.port, post_head(server.port, size)) for size in sizes]
    large = b"[" + b"0," * 200_000 + b"0]"
    try:
        # The server counts a body once it has the request's head: wait until a fifth fails.
        wait_until(
            lambda: server.request("POST", "/score", large)[0] == 503,
            server,
            "a fifth large body to be refused",
        )
        status, headers, body = server.request("POST", "/score", large)
        assert (status, headers["retry-after"]) == (503, "1")
        assert "large bodies" in json.loads(body)["error"]
        assert server.request("POST", "/score", b"[1]")[0] == 200  # small ones still fit
    finally:
        for connection in waiting:
            connection.close()
    wait_until(
        lambda: server.request("POST", "/score", large)[0] == 200,
        server,
        "a large body to be taken once the others are gone",
    )


def test_a_slow_request_head_is_cut_off(start: Callable[..., Server]) -> None:
    server = start(LENGTH_SCORE, "--header-timeout", "0.5")
    server.wait_healthy()
    silent = [raw(server.port, b"") for _ in range(20)]
    partial = [raw(server.port, b"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\n") for _ in range(20)]
    try:
        for connection in silent + partial:
            assert connection.recv(1024) == b"", "the server answered instead of closing"
    except TimeoutError:
        pytest.fail("the server kept a connection open that sent no complete request head")
    finally:
        for connection in silent + partial:
            connection.close()
    # A keep-alive connection gets the same deadline for its next request.
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request("POST", "/score", b"[1]", {"Content-Type": "application/json"})
    assert connection.getresponse().read() == b"3"
    connection.sock.sendall(b"POST /score HTTP/1.1\r\n")
    assert connection.sock.recv(1024) == b""
    connection.close()
    assert server.request("POST", "/score", b"[1]")[0] == 200


def test_a_slow_body_is_408(start: Callable[..., Server]) -> None:
    server = start(LENGTH_SCORE, env={"MLMAGIC_BODY_TIMEOUT": "0.5"})
    server.wait_healthy()
    with raw(server.port, post_head(server.port, 100) + b"[1, 2") as connection:
        status, headers, body = answer(connection)
    assert (status, headers["content-type"]) == (408, "application/json")
    assert "did not arrive within 0.5 s" in json.loads(body)["error"]
    assert server.request("POST", "/score", b"[1]")[0] == 200


def test_bad_settings_stop_the_server_with_their_name(start: Callable[..., Server]) -> None:
    for name, value in [
        ("MLMAGIC_BODY_TIMEOUT", "nan"),
        ("MLMAGIC_MAX_IN_FLIGHT", "0"),
        ("MLMAGIC_ALLOWED_HOSTS", "localhost:http"),
    ]:
        server = start(SCORE, env={name: value})
        assert server.process.wait(timeout=15) != 0
        assert name in server.output()


# --- Requests from a browser ---------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""],
)
def test_score_takes_only_json(server: Server, content_type: str, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    payload = json.dumps({"block": str(marker), "release": str(marker)}).encode()
    for path in ("/score", "/invocations"):
        status, headers, body = server.request(
            "POST", path, payload, {"Content-Type": content_type}
        )
        assert (status, headers["content-type"]) == (415, "application/json")
        assert "Content-Type: application/json" in json.loads(body)["error"]
    assert not marker.exists(), "run() was called"


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "Application/JSON"])
def test_json_content_types_with_parameters_are_taken(server: Server, content_type: str) -> None:
    status, _, body = server.request(
        "POST", "/score", b'{"x": [2, 0, 0]}', {"Content-Type": content_type}
    )
    assert (status, json.loads(body)["y"]) == (200, 1.0)


@pytest.mark.parametrize("path", ["/", "/ping", "/swagger.json", "/score", "/invocations"])
def test_a_foreign_host_is_refused_on_every_route(server: Server, path: str) -> None:
    method = "POST" if path in ("/score", "/invocations") else "GET"
    headers = {"Host": f"rebound.example:{server.port}"}
    status, _, body = server.request(method, path, b'{"x": [1, 1, 1]}', headers)
    assert status == 421
    assert "rebound.example" in json.loads(body)["error"]


@pytest.mark.parametrize(
    "host", ["localhost:{port}", "127.0.0.1:{port}", "[::1]:{port}", "LOCALHOST"]
)
def test_loopback_hosts_are_answered_by_default(server: Server, host: str) -> None:
    headers = {"Host": host.format(port=server.port)}
    assert server.request("POST", "/score", b'{"x": [1, 1, 1]}', headers)[0] == 200


def test_the_allowed_hosts_come_from_the_deployer(start: Callable[..., Server]) -> None:
    port = free_port()
    allowed = f"127.0.0.1:{port},svc.internal:{port}"
    server = start(LENGTH_SCORE, env={"MLMAGIC_ALLOWED_HOSTS": allowed})
    published = {"Host": f"127.0.0.1:{port}"}
    wait_until(lambda: server.answers(published) == 200, server, "GET / to answer 200")
    # Not the port it listens on (as in a container), but the one it was published on.
    assert server.request("GET", "/")[0] == 421
    for host, status in [
        (f"127.0.0.1:{port}", 200),
        (f"svc.internal:{port}", 200),
        (f"localhost:{port}", 421),
        ("svc.internal", 421),
    ]:
        assert server.request("POST", "/score", b"[1]", {"Host": host})[0] == status, host


def test_no_cors_headers_are_sent(server: Server) -> None:
    origin = {"Origin": "http://page.example"}
    preflight = {
        **origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    status, headers, _ = server.request("OPTIONS", "/score", None, preflight)
    assert status == 405
    for method, path in [("POST", "/score"), ("GET", "/"), ("GET", "/swagger.json")]:
        _, found, _ = server.request(method, path, b'{"x": [1, 1, 1]}', origin)
        headers.update(found)
    assert [name for name in headers if name.startswith("access-control-")] == []


# --- Answers that are always JSON ---------------------------------------------------------


def test_non_finite_floats_in_a_result_are_null(server: Server) -> None:
    status, headers, body = server.request("POST", "/score", b'{"nan": true}')
    assert (status, headers["content-type"]) == (200, "application/json")
    assert json.loads(body, parse_constant=pytest.fail) == {
        "values": [None, None, 1.5],
        "vector": [None],
    }


@pytest.mark.parametrize(
    ("payload", "error"),
    [({"exit": 3}, "SystemExit: 3"), ({"interrupt": True}, "KeyboardInterrupt")],
)
def test_system_exit_and_keyboard_interrupt_in_run_are_json_500s(
    server: Server, payload: dict[str, object], error: str
) -> None:
    assert server.score(payload) == (500, {"error": error})
    assert server.score({"x": [1, 1, 1]})[0] == 200
    assert server.process.poll() is None


def test_the_deploy_side_allows_only_the_published_address():
    from mlmagic.serve.hosts import host_allowed, parse_hosts
    from mlmagic.targets.serving import allowed_hosts

    published = parse_hosts(allowed_hosts("127.0.0.1", 8123))
    assert host_allowed("localhost:8123", published)
    assert host_allowed("127.0.0.1:8123", published)
    assert not host_allowed("localhost:5001", published)  # the port inside a container
    assert not host_allowed("evil.example:8123", published)
    assert allowed_hosts("0.0.0.0", 80) == "*:80"
    assert allowed_hosts("10.1.2.3", 80).endswith(",10.1.2.3:80")
