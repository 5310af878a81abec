"""The shim hands the C heap's free pages back once the stream is ready (memory, issue 16)."""
from tests.unit.shim.shim_helpers import run, shim_client
from tests.unit.shim.shim_fakepeer import FakePeer

from ipledger.chaincode.shim import handler
from ipledger.chaincode.shim.contract_api import Contract, transaction


class Get(Contract):
    name = "get"

    @transaction(submit=False)
    def Get(self, stub, key):
        return stub.get_state(key).decode()


def test_free_heap_released_at_ready_then_transactions_as_before(monkeypatch):
    calls = []
    monkeypatch.setattr(handler, "release_free_heap", lambda: calls.append(1))

    async def body():
        async with shim_client(Get()) as (peer, client, _):
            assert client.session.ready.is_set() and calls == [1]
            peer.state["k"] = b'"v"'
            for _ in range(3):
                assert FakePeer.response(await peer.transaction("Get", '"k"')).payload == b'"\\"v\\""'
            assert calls == [1]

    run(body())


def test_release_free_heap_runs_once_and_never_raises(monkeypatch):
    monkeypatch.setattr(handler, "_heap_released", False)
    handler.release_free_heap()
    assert handler._heap_released
    handler.release_free_heap()  # a second session (reconnect) does nothing


def test_idle_workers_end_and_the_pool_still_serves():
    import threading
    import time

    pool = handler.WorkerPool(max_workers=8, idle_seconds=0.2)
    release, done = threading.Event(), []
    lock = threading.Lock()

    def task(i):
        release.wait(5)
        with lock:
            done.append(i)

    for i in range(8):
        pool.submit(task, i)
    assert pool.size == 8
    release.set()
    deadline = time.monotonic() + 5
    while (pool.size or len(done) < 8) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sorted(done) == list(range(8)) and pool.size == 0
    # a burst after the workers ended: threads start again, every task runs once
    for i in range(8, 40):
        pool.submit(task, i)
    deadline = time.monotonic() + 5
    while len(done) < 40 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sorted(done) == list(range(40)) and 1 <= pool.size <= 8
    pool.shutdown()


def test_a_worker_never_leaves_a_queued_task_behind():
    import threading
    import time

    # tasks arrive just as idle workers time out: every one must still run
    pool = handler.WorkerPool(max_workers=4, idle_seconds=0.01)
    done = []
    lock = threading.Lock()

    def task(i):
        with lock:
            done.append(i)

    for i in range(300):
        pool.submit(task, i)
        if i % 7 == 0:
            time.sleep(0.011)
    deadline = time.monotonic() + 5
    while len(done) < 300 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sorted(done) == list(range(300))
    pool.shutdown()


def test_client_mode_over_its_own_http2_never_loads_grpc():
    # grpc's library alone is about 12 MB of the chaincode's RSS; client mode does without it
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import ipledger.chaincode.shim.client, ipledger.chaincode.contract\n"
        "print(sorted(m for m in sys.modules if m == 'grpc' or m.startswith(('grpc.', '_cython'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
