"""The prototype's ingest, in its own process: `python -m bench.prototype MODEL` (driven by bench.ingest).

The original app encoded its photos the plain way: `SentenceTransformer(model)` in fp32, one photo at a
time, decoded at full size by PIL (no draft mode), CLIP's preprocessing on the full image, the vector
added to a FAISS flat index. None of the product's code runs here (not its decoder, not its encoder nor
the process-wide tuning the encoder applies), so the comparison is with what the prototype really did.

Protocol: one JSON object per line on stdin, `{"paths": [...]}`, answered by one line on stdout,
`{"seconds": ..., "images": ...}`; an empty line or end of input stops it. Ready once it printed `ready`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main(argv: list[str] | None = None) -> int:
    """Serve requests until stdin ends."""
    args = argv if argv is not None else sys.argv[1:]
    import faiss
    from PIL import Image
    from sentence_transformers import SentenceTransformer

    Image.MAX_IMAGE_PIXELS = None
    model = SentenceTransformer(args[0], device="cpu")
    index = faiss.IndexFlatIP(model.get_embedding_dimension() or 768)
    model.encode(Image.new("RGB", (224, 224)), normalize_embeddings=True)  # warm up
    print("ready", flush=True)
    for line in sys.stdin:
        if not line.strip():
            break
        paths = json.loads(line)["paths"]
        started = time.perf_counter()
        for path in paths:
            image = Image.open(path).convert("RGB")
            vector = model.encode(image, normalize_embeddings=True)
            index.add(vector.reshape(1, -1).astype("float32"))
        print(json.dumps({"seconds": time.perf_counter() - started, "images": len(paths)}), flush=True)
    return 0


class PrototypeWorker:
    """The worker process, seen from the bench: start it, time batches of photos, stop it."""

    def __init__(self, model: str) -> None:
        import subprocess

        repo = str(Path(__file__).resolve().parent.parent)
        path = os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH", "")) if p)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.prototype", model],
            cwd=repo,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": path},
        )
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.strip() == "ready":
                return
        raise RuntimeError(f"the prototype worker exited with {self.process.wait()}")

    @property
    def pid(self) -> int:
        """Its process id (for CPU accounting)."""
        return self.process.pid

    def encode(self, paths: list[str]) -> float:
        """Seconds the prototype took for these photos."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"paths": paths}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the prototype worker exited with {self.process.wait()}")
        return float(json.loads(line)["seconds"])

    def close(self) -> None:
        """Stop it."""
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(30)
            except Exception:
                self.process.kill()
                self.process.wait(5)


if __name__ == "__main__":
    sys.exit(main())
