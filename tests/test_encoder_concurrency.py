"""The encoder under concurrency: one model thread for all torch work, texts of waiting callers shared."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


def test_concurrent_text_callers_share_forward_passes(encoder, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The encoder gathers the texts of callers waiting for the model into one forward (bench: 8 clients)."""
    texts = [f"landmark number {i}" for i in range(6)]
    alone = {t: encoder.text.encode_texts([t])[0] for t in texts}
    original = encoder._forward
    calls: list[int] = []

    def slow(inputs: list[str], batch_size: int) -> np.ndarray:
        calls.append(len(inputs))
        time.sleep(0.2)  # long enough for every other caller to queue up behind this pass
        return original(inputs, batch_size)

    monkeypatch.setattr(encoder, "_forward", slow)
    got: dict[str, np.ndarray] = {}
    threads = [
        threading.Thread(target=lambda t=t: got.__setitem__(t, encoder.text.encode_texts([t])[0]))
        for t in texts
    ]
    for thread in threads:
        thread.start()
        time.sleep(0.01)
    for thread in threads:
        thread.join()
    assert sum(calls) == len(texts) and len(calls) < len(texts)
    for text in texts:
        np.testing.assert_allclose(got[text], alone[text], atol=1e-5)


def test_a_failing_shared_pass_fails_only_its_bad_caller(encoder) -> None:  # type: ignore[no-untyped-def]
    from core.model.model_thread import Job, model_thread

    def picky(inputs: list[str]) -> np.ndarray:
        if "bad" in inputs:
            raise ValueError("bad text")
        return encoder._forward(inputs, 32)

    good, bad = Job(picky, ["good"], batch_key="k"), Job(picky, ["bad"], batch_key="k")
    model_thread()._do([good, bad])
    assert good.result is not None and good.error is None
    assert isinstance(bad.error, ValueError) and bad.result is None
    with pytest.raises(ValueError):
        model_thread().run(Job(picky, ["bad"], batch_key="k"))
    assert encoder.text.encode_texts(["still works"]).shape == (1, encoder.dim)


def test_all_torch_work_runs_on_one_thread(encoder) -> None:  # type: ignore[no-untyped-def]
    """Loading and every forward happen on the model thread, whichever thread asks."""
    from core.model import model_thread

    seen: set[int] = set()
    original = encoder._forward

    def spy(inputs: list[str], batch_size: int) -> np.ndarray:
        seen.add(threading.get_ident())
        return original(inputs, batch_size)

    encoder._forward = spy
    try:
        encoder.text.encode_texts(["a"])
        worker = threading.Thread(target=lambda: encoder.text.encode_texts(["b"]))
        worker.start()
        worker.join()
    finally:
        del encoder._forward
    assert seen == {model_thread()._thread_id}
    assert model_thread().call(threading.get_ident) == model_thread()._thread_id


def test_allocator_keeps_freed_memory_on_linux() -> None:
    import sys

    from core.model import keep_freed_memory

    assert keep_freed_memory() is sys.platform.startswith("linux")


def test_busy_callers_settle_into_full_passes(encoder, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Four callers in a loop (a busy 4-thread server) end up sharing each pass, rather than settling
    into two alternating pairs: the next pass waits a moment for the callers of the last ones."""
    original = encoder._forward
    sizes: list[int] = []

    def slow(inputs: list[str], batch_size: int) -> np.ndarray:
        sizes.append(len(inputs))
        time.sleep(0.06)  # a pass of the real text tower takes this long
        return original(inputs, batch_size)

    monkeypatch.setattr(encoder, "_forward", slow)

    def caller(n: int) -> None:
        for j in range(8):
            time.sleep(0.002)  # the caller's own work between two texts (answering, parsing the next)
            encoder.text.encode_texts([f"caller {n} text {j}"])

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(sizes) == 32
    assert sum(size == 4 for size in sizes) >= len(sizes) // 2, sizes


def test_a_lone_caller_never_waits(encoder, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Not even straight after a busy spell (the busy test above ran on the same model thread)."""
    from core.model import model_thread

    waits: list[float | None] = []
    condition = model_thread()._turn
    original = condition.wait_for

    def spy(predicate, timeout=None):  # type: ignore[no-untyped-def]
        waits.append(timeout)
        return original(predicate, timeout)

    monkeypatch.setattr(condition, "wait_for", spy)
    for i in range(3):
        time.sleep(0.1)  # a lone user types the next query
        encoder.text.encode_texts([f"alone {i}"])
    assert waits == []


def test_a_new_thread_reuses_freed_blocks_larger_than_a_thread_arena() -> None:
    """After keep_freed_memory, a thread started later (the model thread) gets big blocks back from the
    main arena instead of fresh, zeroed mmaps: repeating a 100 MB allocation faults in no new pages."""
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc only")
    code = """
import resource, threading
import numpy as np
from core.model import keep_freed_memory
assert keep_freed_memory()
def work():
    np.ones(100 << 20, dtype=np.uint8)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        np.ones(100 << 20, dtype=np.uint8)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
thread = threading.Thread(target=work)
thread.start()
thread.join()
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) < 50  # a fresh 100 MB block each time would fault in 250 to 128,000 pages
