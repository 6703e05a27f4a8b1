"""`python -m eval` end to end on the tiny model and generated photos: a labelled tree with `other/` (half of
it already in the library), a queries file in two languages, a tiny dataset in revisitop's gnd format, and
an int8 comparison. The report files exist and agree with the JSON, the threshold is written, library
photos are not encoded again, and a second run encodes nothing and compares itself with the first."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from core.calibration import calibration_path, read_calibration
from core.images import decode_image
from core.model import ClipModel
from core.settings import Settings
from core.store.embedded import EmbeddedStore
from eval import revisited
from eval.__main__ import main
from ingest.pipeline import run_ingest
from tests.image_factory import jpeg_bytes, photo, write

CLASSES = ("pyramids", "moscow_kremlin", "towers_skyscrapers")
PER_CLASS = 4
OTHERS = 3


def build_inputs(root: Path) -> dict[str, Any]:
    """The library-shaped labelled tree, the queries file and a revisited dataset under `root`."""
    images = root / "images"
    seed = 0
    for name in (*CLASSES, "other"):
        for i in range(OTHERS if name == "other" else PER_CLASS):
            seed += 1
            write(images / name / f"{name}_{i}.jpg", jpeg_bytes(photo(seed, (200, 150))))
    lines = [
        {
            "query": "pyramids in the desert",
            "language": "en",
            "relevant": ["pyramids/pyramids_0.jpg"],
            "group": "p",
        },
        {
            "query": "пирамиды в пустыне",
            "language": "ru",
            "relevant": ["pyramids/pyramids_0.jpg"],
            "group": "p",
        },
        {
            "query": "a tall tower",
            "relevant": ["towers_skyscrapers/towers_skyscrapers_1.jpg", "nowhere/x.jpg"],
        },
        {"query": "nothing there", "relevant": ["nowhere/y.jpg"]},
    ]
    queries = root / "queries.jsonl"
    queries.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n", encoding="utf-8")
    oxford = root / "roxford"
    names = [f"db_{i}" for i in range(6)]
    (oxford / "jpg").mkdir(parents=True)
    for i, name in enumerate(names):
        photo(500 + i, (160, 120)).save(oxford / "jpg" / f"{name}.jpg")
    for q in range(2):
        photo(500 + q, (160, 120)).save(oxford / "jpg" / f"query_{q}.jpg")
    gnd = {
        "imlist": names,
        "qimlist": ["query_0", "query_1"],
        "gnd": [
            {
                "bbx": np.array([10.0, 10.0, 150.0, 110.0]),
                "easy": np.array([0, 2]),
                "hard": np.array([3]),
                "junk": np.array([4]),
            },
            # Every positive of this query is junk under Hard: it is left out there.
            {"bbx": [0, 0, 120, 100], "easy": [1], "hard": [], "junk": [5]},
        ],
    }
    with (oxford / "gnd_roxford5k.pkl").open("wb") as handle:
        pickle.dump(gnd, handle)
    return {"images": images, "queries": queries, "gnd": oxford / "gnd_roxford5k.pkl", "oxford": oxford}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[dict[str, Any]]:
    """Ingest two classes into the library, then run the eval twice (the second with nothing to encode)."""
    root = tmp_path_factory.mktemp("eval")
    inputs = build_inputs(root)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        clip_model=str(tiny_model_dir),
        clip_device="cpu",
        clip_precision="fp32",
        images_dir=inputs["images"],
        data_dir=root / "data",
        encode_batch_size=4,
    )
    encoder = ClipModel(str(tiny_model_dir), device="cpu", precision="fp32")
    store = EmbeddedStore(settings.shard_dir)
    run_ingest(
        settings, encoder, store, paths=[inputs["images"] / c for c in CLASSES[:2]], show_progress=False
    )
    store.close()
    env = {
        "CLIP_MODEL": str(tiny_model_dir),
        "CLIP_DEVICE": "cpu",
        "CLIP_PRECISION": "fp32",
        "IMAGES_DIR": str(inputs["images"]),
        "DATA_DIR": str(root / "data"),
        "ENCODE_BATCH_SIZE": "4",
        "QDRANT_URL": "",
    }
    argv = ["--queries", str(inputs["queries"]), "--labelled", str(inputs["images"])]
    argv += ["--revisited", str(inputs["gnd"]), "--precision", "int8", "--quiet"]
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        for key, value in env.items():
            patch.setenv(key, value)
        assert main(argv) == 0
        first = sorted((root / "data" / "eval").glob("2*"))
        assert main(argv) == 0
    runs = sorted((root / "data" / "eval").glob("2*"))
    assert len(first) == 1 and len(runs) == 2
    yield {
        "root": root,
        "settings": settings,
        "encoder": encoder,
        "inputs": inputs,
        "runs": runs,
        "first": json.loads((runs[0] / "report.json").read_text(encoding="utf-8")),
        "second": json.loads((runs[1] / "report.json").read_text(encoding="utf-8")),
    }


def test_classification_counts_every_labelled_photo(evaluated: dict[str, Any]) -> None:
    report = evaluated["first"]
    section = report["classification"]
    photos = len(CLASSES) * PER_CLASS + OTHERS
    assert section["photos"] == photos
    matrix = np.asarray(section["confusion_matrix"]["matrix"])
    assert matrix.sum() == photos
    labels = section["confusion_matrix"]["labels"]
    assert labels[-1] == "other" and set(CLASSES) <= set(labels)
    assert matrix[labels.index("other")].sum() == OTHERS
    assert section["top1_accuracy"] <= section["top3_accuracy"]
    assert sum(b["count"] for b in section["calibration"]["bins"]) == photos
    prompts = section["prompts"]["rows"]
    assert prompts and {r["class_id"] for r in prompts} == {c for c in labels if c != "other"}


def test_threshold_is_fitted_written_and_used(evaluated: dict[str, Any]) -> None:
    first, second = evaluated["first"], evaluated["second"]
    settings: Settings = evaluated["settings"]
    calibration = read_calibration(calibration_path(settings.data_dir))
    assert calibration is not None
    assert calibration.threshold == pytest.approx(second["threshold"]["fitted"])
    assert calibration.model == settings.clip_model
    assert first["threshold"]["written"] is True
    # The second run starts from the value the first one wrote, and classifies at the fitted one.
    assert second["threshold"]["before"] == pytest.approx(first["threshold"]["fitted"])
    assert second["threshold"]["before_from"] == "calibration"
    assert first["classification"]["threshold"] == pytest.approx(first["threshold"]["fitted"])
    assert 0.0 <= first["threshold"]["coverage"] <= 1.0


def test_library_photos_are_not_encoded_again(evaluated: dict[str, Any]) -> None:
    first, second = evaluated["first"]["photos"], evaluated["second"]["photos"]
    labelled = first["labelled"]
    assert labelled["photos"] == len(CLASSES) * PER_CLASS + OTHERS
    assert labelled["from_library"] == 2 * PER_CLASS
    assert labelled["encoded"] == labelled["photos"] - 2 * PER_CLASS
    assert second["labelled"]["encoded"] == 0 and second["roxford5k"]["encoded"] == 0
    assert second["labelled"]["from_eval_cache"] == labelled["photos"]
    # The comparison precision never borrows the library's vectors.
    int8 = evaluated["first"]["precision"]["int8"]
    assert int8["photos_encoded"] == labelled["photos"] + first["roxford5k"]["photos"]


def test_text_queries_per_language_and_ratio(evaluated: dict[str, Any]) -> None:
    report = evaluated["first"]
    section = report["text_to_image"]
    assert section["en"]["queries"] == 2 and section["ru"]["queries"] == 1
    assert section["ru_en"]["pairs"] == 1
    for k in ("r@1", "r@5", "r@10", "map"):
        assert 0.0 <= section["en"][k] <= 1.0
    queries = report["inputs"]["queries"]
    assert queries["dropped_no_relevant_photo_found"] == 1
    assert sorted(queries["relevant_not_found"]) == ["nowhere/x.jpg", "nowhere/y.jpg"]
    # Twelve photos in the database: every relevant photo is within the first 12, so R@10 <= R@12 = 1.
    assert report["image_to_image"]["queries"] == len(CLASSES) * PER_CLASS


def _revisited_by_hand(evaluated: dict[str, Any]) -> dict[str, Any]:
    """The revisited figures from the encoder directly and a brute-force ranking (no search layer)."""
    from eval.revisited_data import load_revisited

    encoder: ClipModel = evaluated["encoder"]
    dataset = load_revisited(evaluated["inputs"]["gnd"])
    side = 2 * encoder.identity.image_size
    database = encoder.image.encode_images(
        [
            decode_image(dataset.database_path(i), 10**8, min_side=side).image
            for i in range(len(dataset.imlist))
        ]
    )
    crops = []
    for q in range(len(dataset.qimlist)):
        crop = dataset.query_image(q)
        crops.append(_as_uploaded(crop, side))
    queries = encoder.image.encode_images(crops)
    rankings = revisited.rankings_from_similarity(queries @ database.T)
    return revisited.as_report(revisited.evaluate_revisited(rankings, dataset.gnd))


def _as_uploaded(crop: Image.Image, side: int) -> Image.Image:
    import io

    buffer = io.BytesIO()
    crop.save(buffer, format="PNG")
    return decode_image(buffer.getvalue(), 10**8, min_side=side).image


def test_revisited_protocol_matches_a_brute_force_ranking(evaluated: dict[str, Any]) -> None:
    report = evaluated["first"]["revisited"]["roxford5k"]
    expected = _revisited_by_hand(evaluated)
    assert report["hard"]["queries"] == 1 and report["medium"]["queries"] == 2
    for setup in revisited.SETUPS:
        for key in ("map", "mp@1", "mp@5", "mp@10"):
            assert report[setup][key] == pytest.approx(expected[setup][key], abs=1e-6), (setup, key)


def test_precisions_side_by_side(evaluated: dict[str, Any]) -> None:
    precision = evaluated["first"]["precision"]
    assert set(precision) == {"fp32", "int8"}
    assert precision["fp32"]["mean_cosine_to_fp32"] == pytest.approx(1.0, abs=1e-5)
    assert 0.5 < precision["int8"]["mean_cosine_to_fp32"] <= 1.0 + 1e-6
    for row in precision.values():
        assert "top1_accuracy" in row and "roxford5k_medium_map" in row


def test_report_files_agree_with_the_json(evaluated: dict[str, Any]) -> None:
    run = evaluated["runs"][0]
    report = evaluated["first"]
    assert report["charts"] == {
        "confusion_matrix": "confusion_matrix.png",
        "reliability": "reliability.png",
        "prompts": "prompts.png",
    }
    for name in report["charts"].values():
        assert (run / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (run / "report.md").read_text(encoding="utf-8")
    assert f"| top1_accuracy | {report['classification']['top1_accuracy']:.4f} |" in markdown
    assert f"{report['revisited']['roxford5k']['medium']['map']:.4f}" in markdown
    assert "This is the first run." in markdown
    assert report["crosscheck"]["points"] == report["photos"]["labelled"]["photos"]
    assert report["crosscheck"]["recall_at_k"] == 1.0


def test_second_run_compares_with_the_first(evaluated: dict[str, Any]) -> None:
    second = evaluated["second"]
    assert second["previous"]["run"] == evaluated["runs"][0].name
    measures = {c["measure"] for c in second["previous"]["changes"]}
    assert "classification.top1_accuracy" in measures
    assert not any(m.startswith(("cost.", "photos.")) for m in measures)
    markdown = (evaluated["runs"][1] / "report.md").read_text(encoding="utf-8")
    assert f"Compared with run {evaluated['runs'][0].name}" in markdown


def test_bad_inputs_exit_2_with_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        patch.setenv("DATA_DIR", str(tmp_path / "data"))
        assert main(["--labelled", str(tmp_path / "empty")]) == 2
        assert "no photos under" in capsys.readouterr().err
        bad = tmp_path / "q.jsonl"
        bad.write_text('{"query": "x"}\n', encoding="utf-8")
        assert main(["--queries", str(bad)]) == 2
        assert "'relevant' must be" in capsys.readouterr().err


@pytest.fixture(scope="module")
def eval_client(evaluated: dict[str, Any]) -> Iterator[Any]:
    """The API over the library and data folder the eval ran on."""
    from api.factory import create_app

    settings: Settings = evaluated["settings"]
    store = EmbeddedStore(settings.shard_dir)
    yield create_app(settings, evaluated["encoder"], store).test_client()
    store.close()


def test_api_serves_the_latest_report_and_its_charts(evaluated: dict[str, Any], eval_client: Any) -> None:
    from tests.api_helpers import assert_error

    response = eval_client.get("/api/eval/latest")
    assert response.status_code == 200
    body = response.json
    run = evaluated["runs"][1]
    assert body["run"] == run.name
    assert body["report"] == evaluated["second"]
    assert set(body["charts"]) == {"confusion_matrix", "reliability", "prompts"}
    for name, url in body["charts"].items():
        assert url == f"/api/eval/runs/{run.name}/charts/{name}"
        chart = eval_client.get(url)
        assert chart.status_code == 200 and chart.mimetype == "image/png"
        assert chart.data == (run / evaluated["second"]["charts"][name]).read_bytes()
    for url in (
        f"/api/eval/runs/{run.name}/charts/report",
        f"/api/eval/runs/{run.name}/charts/confusion_matrix.png",
        "/api/eval/runs/..%2F..%2Fcalibration/charts/prompts",
        "/api/eval/runs/20991231T000000Z/charts/prompts",
    ):
        assert_error(eval_client.get(url), 404)


def test_api_answers_404_before_any_eval(tmp_path: Path, evaluated: dict[str, Any]) -> None:
    from api.factory import create_app
    from tests.api_helpers import assert_error

    settings = evaluated["settings"].model_copy(update={"data_dir": tmp_path / "fresh"})
    store = EmbeddedStore(tmp_path / "fresh" / "qdrant")
    try:
        client = create_app(settings, evaluated["encoder"], store).test_client()
        assert_error(client.get("/api/eval/latest"), 404, "no_report")
    finally:
        store.close()


def test_other_is_a_class_of_the_api(evaluated: dict[str, Any], eval_client: Any) -> None:
    """After the eval wrote the threshold, ingest relabels from stored vectors; `other` is listed, counted,
    filterable, and classify answers it with its reason while still showing the top 3."""
    from tests.api_helpers import upload
    from tests.image_factory import jpeg_bytes as jpeg

    client = eval_client
    service = client.application.extensions["wonders"]
    report = run_ingest(evaluated["settings"], evaluated["encoder"], service.store, show_progress=False)
    assert report.relabelled > 0  # the threshold is part of the labels' fingerprint
    service.reload_classifier()  # what the ingest job does after handing the run to the service
    classes = {c["id"]: c["count"] for c in client.get("/api/classes").json["classes"]}
    assert "other" in classes
    stats = client.get("/api/stats").json
    assert stats["classes"]["other"] == classes["other"]
    assert sum(stats["classes"].values()) == stats["points"]
    page = client.get("/api/search", query_string={"q": "a photo", "class": "other", "k": 50}).json
    assert len(page["results"]) == classes["other"]
    assert all(r["label"]["id"] == "other" for r in page["results"])
    answers = []
    for seed in range(40):
        body = client.post(
            "/api/classify", data=upload(jpeg(photo(9000 + seed))), content_type="multipart/form-data"
        ).json
        assert len(body["top3"]) == 3 and all(t["id"] != "other" for t in body["top3"])
        assert (body["label"]["id"] == "other") == (body["reason"] is not None)
        answers.append(body["reason"])
    assert None in answers or "low_confidence" in answers
