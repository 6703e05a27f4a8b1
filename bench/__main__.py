"""`python -m bench [--quick] [--model vit-l14|tiny] [--out DIR]`: measure Wonders and write bench/results/.

Sections (each can be run alone with --only):
- ingest: the product's ingest vs the bare model and vs the prototype's way; precision speed and fidelity
  (default bf16 vs fp32, opt-in int8 vs fp32);
- query: text search, image search and classify over HTTP through gunicorn vs the bare encoder, the query
  cache, 8 concurrent clients, and the API process's memory;
- store: the embedded Qdrant store with many CLIP-like vectors: upsert, HNSW build, recall vs FAISS;
- refine: search with 3 + 2 examples vs a plain text search, and the near-duplicate check of the whole
  store and per new photo (bench/refine.py).
- multilingual: Russian (the multilingual text tower) vs English (CLIP) text search over HTTP in one server,
  the memory the tower adds, 8 concurrent clients mixing both (bench/multilingual.py). Full mode uses the
  real XLM-R-large architecture with random weights; --quick a small stand-in, unless --mclip real.
- first_run: from starting the service to an answered search on an empty library and on one of 1,000
  photos never indexed (it indexes them in the background), and text searches during that indexing.

Quick runs write to bench/results/quick/ (not tracked); the published figures in bench/results/ come
from full runs.

The model is the real ViT-L/14 architecture with random weights (bench/model.py), loaded through the
product's encoder; `--model tiny` uses the tests' tiny CLIP (proves the bench works, measures nothing).
Full mode on ViT-L/14 takes about 20 minutes on a 2-core CPU; `--quick` a couple of minutes.
"""

from __future__ import annotations

import argparse
import functools
import gc
import logging
import os
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench import model as bench_model
from bench.ingest import IngestConfig
from core.settings import Settings

log = logging.getLogger("bench")
RESULTS = Path(__file__).resolve().parent / "results"

# The product's default batch size (ENCODE_BATCH_SIZE): model-only and ingest are measured at it.
PRODUCT_BATCH: int = Settings.model_fields["encode_batch_size"].default
# (model, quick) -> sample counts. ViT-L/14 in fp32 is about 1 image/s on 2 cores: keep counts small.
PLANS: dict[tuple[str, bool], dict[str, Any]] = {
    ("vit-l14", False): {
        "ingest": IngestConfig(
            photos=32,
            photo_size=(3000, 2000),
            rounds=5,
            prototype_per_round=6,
            fp32_per_round=6,
            batch_size=PRODUCT_BATCH,
        ),
        "query": {
            "samples_text": 80,
            "samples_image": 12,
            "concurrent_clients": 8,
            "requests_per_client_text": 25,
            "requests_per_client_image": 4,
        },
        "store": {"count": 100_000, "queries": 200, "ef_sweep": [16, 32, 64, 128, 256, 512]},
        "multilingual": {"samples": 40, "concurrent_clients": 8, "requests_per_client": 6},
        "refine": {"count": 100_000, "samples": 60, "new_photos": 20},
    },
    ("vit-l14", True): {
        "ingest": IngestConfig(
            photos=8,
            photo_size=(3000, 2000),
            rounds=2,
            prototype_per_round=2,
            fp32_per_round=4,
            batch_size=PRODUCT_BATCH,
        ),
        "query": {
            "samples_text": 15,
            "samples_image": 4,
            "concurrent_clients": 8,
            "requests_per_client_text": 4,
            "requests_per_client_image": 1,
        },
        "store": {"count": 20_000, "queries": 100, "ef_sweep": [32, 128, 256]},
        "multilingual": {"samples": 12, "concurrent_clients": 8, "requests_per_client": 2},
        "refine": {"count": 20_000, "samples": 60, "new_photos": 20},
    },
    ("tiny", False): {
        "ingest": IngestConfig(
            photos=16,
            photo_size=(3000, 2000),
            rounds=3,
            prototype_per_round=4,
            fp32_per_round=8,
            batch_size=8,
        ),
        "query": {
            "samples_text": 80,
            "samples_image": 20,
            "concurrent_clients": 8,
            "requests_per_client_text": 10,
            "requests_per_client_image": 4,
        },
        "store": {"count": 20_000, "queries": 100, "ef_sweep": [16, 32, 64, 128]},
        "multilingual": {"samples": 20, "concurrent_clients": 8, "requests_per_client": 4},
        "refine": {"count": 20_000, "samples": 60, "new_photos": 20},
    },
    ("tiny", True): {
        "ingest": IngestConfig(
            photos=6, photo_size=(1200, 800), rounds=2, prototype_per_round=2, fp32_per_round=3, batch_size=4
        ),
        "query": {
            "samples_text": 10,
            "samples_image": 4,
            "concurrent_clients": 8,
            "requests_per_client_text": 3,
            "requests_per_client_image": 1,
        },
        "store": {"count": 20_000, "queries": 50, "ef_sweep": [32, 128, 256]},
        "multilingual": {"samples": 6, "concurrent_clients": 8, "requests_per_client": 2},
        "refine": {"count": 5_000, "samples": 60, "new_photos": 20},
    },
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sample counts (CI)")
    parser.add_argument(
        "--model",
        choices=["vit-l14", "tiny"],
        default=None,
        help="vit-l14 (default; random weights) or tiny (the tests' model)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where latest.json and latest.md go (default bench/results/, quick runs bench/results/quick/)",
    )
    parser.add_argument("--cache", type=Path, default=bench_model.CACHE, help="built models and photos")
    parser.add_argument(
        "--only",
        default="ingest,query,store,multilingual,first_run,refine",
        help="comma-separated sections to run",
    )
    parser.add_argument(
        "--mclip",
        choices=["real", "small"],
        default=None,
        help="the multilingual tower: real (XLM-R-large architecture; full mode's default) or small",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=15.0,
        help="before a sample, wait up to this many seconds for other processes to leave the CPU (0: never)",
    )
    parser.add_argument("--store-vectors", type=int, default=None, help="vectors in the store section")
    return parser


def _expected_precision() -> str:
    import torch

    from core.model import cpu_supports_bf16

    if torch.cuda.is_available():
        return "fp16"
    return "bf16" if cpu_supports_bf16() else "fp32"


def main(argv: list[str] | None = None) -> int:
    """Run the sections, write the report; exit 1 when a section failed (a missed target is not a failure)."""
    args = _parser().parse_args(argv)
    from core.model import keep_freed_memory

    keep_freed_memory()  # the product's entry points do this first too (see its docstring)
    warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")  # torch's note on dynamic int8
    logging.basicConfig(level=logging.INFO, format="%(asctime)s bench %(message)s", stream=sys.stderr)
    for noisy in (
        "faiss.loader",
        "httpx",
        "urllib3",
        "sentence_transformers",
        "transformers",
        "core.model.clip",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    model_name = args.model or "vit-l14"
    plan = PLANS[(model_name, args.quick)]
    out = args.out or (RESULTS / "quick" if args.quick else RESULTS)
    first_run_plan = {"photos": 1000, "queries": 8 if args.quick else 25}
    sections = {s.strip() for s in args.only.split(",") if s.strip()}
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    started = time.perf_counter()

    from bench import util
    from bench.util import machine_info

    util.QUIET_MAX_WAIT[0] = args.quiet_wait

    machine = machine_info()
    machine["expected_precision"] = _expected_precision()
    report: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "model": model_name,
        "started_at": started_at,
        "machine": machine,
        "plan": {k: (v.__dict__ if isinstance(v, IngestConfig) else v) for k, v in plan.items()},
        "quiet_wait_s": args.quiet_wait,
    }
    t = time.perf_counter()
    model_dir = str(bench_model.build_model(model_name, args.cache))
    report["model_dir"] = model_dir
    report["model_build_s"] = round(time.perf_counter() - t, 1)
    log.info("model %s ready at %s", model_name, model_dir)

    workdir = Path(tempfile.mkdtemp(prefix="wonders-bench-"))
    failed = False
    other: dict[str, float] = {}
    try:
        from bench.photos import photo_files

        config: IngestConfig = plan["ingest"]
        size = config.photo_size
        photos_dir = args.cache / "photos" / f"{size[0]}x{size[1]}"
        photos = photo_files(photos_dir, config.photos, size)
        encoder = None
        ingest_settings = None
        if sections & {"query", "multilingual", "refine"} and "ingest" not in sections:
            from bench import ingest as ingest_bench

            encoder, ingest_settings = ingest_bench.prepare_only(model_dir, config, workdir, photos[:4])
        if "ingest" in sections:
            t = time.perf_counter()
            try:
                from bench import ingest as ingest_bench

                result = ingest_bench.run(model_dir, config, workdir, photos)
                encoder = result.pop("_encoder")
                ingest_settings = result.pop("_settings")
                report["ingest"] = result
                other["ingest"] = result["other_cores_median"]
            except Exception as err:  # one failed section must not lose the others
                log.exception("ingest section failed")
                report["ingest"] = {"error": f"{type(err).__name__}: {err}", "trace": traceback.format_exc()}
                failed = True
            report.setdefault("section_s", {})["ingest"] = round(time.perf_counter() - t, 1)
            gc.collect()
            try:  # the GPU path (issue 17): measured only where CUDA is present
                from bench import gpu_ingest

                count = 8 if args.quick else 512
                gpu_photos = functools.partial(
                    photo_files, args.cache / "photos" / "1536x1024", count, (1536, 1024)
                )
                report["gpu_ingest"] = gpu_ingest.run_if_cuda(model_dir, gpu_photos, workdir)
            except Exception as err:
                log.exception("gpu ingest section failed")
                report["gpu_ingest"] = {
                    "error": f"{type(err).__name__}: {err}",
                    "trace": traceback.format_exc(),
                }
                failed = True
        if "query" in sections and encoder is not None and ingest_settings is not None:
            t = time.perf_counter()
            try:
                from bench import query as query_bench
                from bench.ingest import param_report

                result = query_bench.run(
                    model_dir,
                    encoder,
                    ingest_settings.data_dir,
                    ingest_settings.images_dir,
                    photos[0],
                    workdir,
                    ready_timeout=600,
                    **plan["query"],
                )
                result["fp32_copy"] = query_bench.check_no_fp32_copy(
                    result["memory_after_queries_mib"], param_report(encoder)
                )
                report["query"] = result
                other["query"] = result["one_client"]["other_cores_text"]
            except Exception as err:
                log.exception("query section failed")
                report["query"] = {"error": f"{type(err).__name__}: {err}", "trace": traceback.format_exc()}
                failed = True
            report.setdefault("section_s", {})["query"] = round(time.perf_counter() - t, 1)
        if "multilingual" in sections and encoder is not None and ingest_settings is not None:
            t = time.perf_counter()
            try:
                from bench import multilingual as multilingual_bench

                real = args.mclip == "real" if args.mclip else (model_name == "vit-l14" and not args.quick)
                report["multilingual"] = multilingual_bench.run(
                    model_dir,
                    ingest_settings.data_dir,
                    ingest_settings.images_dir,
                    workdir,
                    args.cache,
                    real=real,
                    dim=encoder.dim,
                    ready_timeout=1800,
                    **plan["multilingual"],
                )
                other["multilingual"] = report["multilingual"]["one_client"]["other_cores"]
            except Exception as err:
                log.exception("multilingual section failed")
                report["multilingual"] = {
                    "error": f"{type(err).__name__}: {err}",
                    "trace": traceback.format_exc(),
                }
                failed = True
            report.setdefault("section_s", {})["multilingual"] = round(time.perf_counter() - t, 1)
        if "refine" in sections and encoder is not None:
            t = time.perf_counter()
            try:
                from bench import refine as refine_bench

                refine_plan = dict(plan["refine"])
                if args.store_vectors:
                    refine_plan["count"] = args.store_vectors
                report["refine"] = refine_bench.run(encoder, workdir, **refine_plan)
            except Exception as err:
                log.exception("refine section failed")
                report["refine"] = {"error": f"{type(err).__name__}: {err}", "trace": traceback.format_exc()}
                failed = True
            report.setdefault("section_s", {})["refine"] = round(time.perf_counter() - t, 1)
        del encoder
        gc.collect()
        if "store" in sections:
            t = time.perf_counter()
            try:
                from bench import store as store_bench

                store_plan = dict(plan["store"])
                if args.store_vectors:
                    store_plan["count"] = args.store_vectors
                report["store"] = store_bench.run(**store_plan)
                other["store_build"] = report["store"]["index_build_other_cores"]
            except Exception as err:
                log.exception("store section failed")
                report["store"] = {"error": f"{type(err).__name__}: {err}", "trace": traceback.format_exc()}
                failed = True
            report.setdefault("section_s", {})["store"] = round(time.perf_counter() - t, 1)
        if "first_run" in sections:
            t = time.perf_counter()
            try:
                from bench import first_run

                report["first_run"] = first_run.run(
                    model_dir, args.cache, workdir, timeout=900, **first_run_plan
                )
            except Exception as err:
                log.exception("first_run section failed")
                report["first_run"] = {
                    "error": f"{type(err).__name__}: {err}",
                    "trace": traceback.format_exc(),
                }
                failed = True
            report.setdefault("section_s", {})["first_run"] = round(time.perf_counter() - t, 1)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report["other_cores"] = other
    report["took_s"] = round(time.perf_counter() - started, 1)
    from bench.report import write

    json_path, md_path = write(report, out)
    print(md_path.read_text(encoding="utf-8"))
    print(f"report: {json_path} and {md_path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
