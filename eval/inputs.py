"""What one `make eval` measures on: the labelled tree, the text queries (their relevant photos found on
disk) and the revisited datasets, read and checked before any model is loaded."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.classes import load_classes_file
from core.settings import Settings
from eval.collection import EvalPhoto
from eval.labelled import LabelledSet, read_labelled_tree
from eval.queries import TextQuery, read_queries
from eval.revisited_data import RevisitedDataset, RevisitedFileError, load_revisited


@dataclass
class Inputs:
    """The photos of the labelled set (the tree, then relevant photos outside it), their labels (None for a
    photo only a query names), the queries with their relevant photos' keys, and the revisited datasets."""

    photos: list[EvalPhoto] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    labelled: LabelledSet | None = None
    queries: list[TextQuery] = field(default_factory=list)
    relevant: list[list[str]] = field(default_factory=list)
    missing_relevant: list[str] = field(default_factory=list)
    dropped_queries: int = 0
    revisited: list[RevisitedDataset] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        """The report's `inputs` section: counts and folder names, no server paths."""
        described: dict[str, Any] = {}
        if self.labelled is not None:
            described["labelled"] = {
                "folder": self.labelled.root.name,
                "photos": len(self.labelled.photos),
                "per_label": self.labelled.counts(),
                "unknown_folders": self.labelled.unknown_folders,
                "loose_files": len(self.labelled.loose_files),
            }
        if self.queries or self.dropped_queries:
            described["queries"] = {
                "queries": len(self.queries),
                "dropped_no_relevant_photo_found": self.dropped_queries,
                "relevant_not_found": self.missing_relevant[:20],
                "relevant_not_found_count": len(self.missing_relevant),
            }
        for dataset in self.revisited:
            described[dataset.name] = {"database": len(dataset.imlist), "queries": len(dataset.qimlist)}
        return described


def read_inputs(
    settings: Settings,
    labelled: Path | None,
    queries: Path | None,
    revisited: list[tuple[Path, Path | None]],
) -> Inputs:
    """Read every input; the readers' errors (LabelledTreeError, QueriesFileError, RevisitedFileError) say
    what is wrong. Relevant photos are looked up under IMAGES_DIR, then under the labelled folder."""
    inputs = Inputs()
    parsed = read_queries(queries) if queries is not None else []
    by_file: dict[Path, str] = {}
    if labelled is not None:
        class_ids = [c.id for c in load_classes_file(settings.classes_file).classes]
        inputs.labelled = read_labelled_tree(labelled, class_ids)
        for photo in inputs.labelled.photos:
            key = photo.path.relative_to(inputs.labelled.root).as_posix()
            by_file[photo.path.resolve()] = key
            inputs.photos.append(EvalPhoto(key, photo.path))
            inputs.labels[key] = photo.label
    if parsed:
        roots = [settings.images_dir] + ([labelled] if labelled is not None else [])
        for query in parsed:
            keys = []
            for relative in query.relevant:
                found = next((r / relative for r in roots if (r / relative).is_file()), None)
                if found is None:
                    inputs.missing_relevant.append(relative)
                    continue
                known = by_file.get(found.resolve())
                if known is None:
                    known = by_file[found.resolve()] = f"queries/{relative}"
                    inputs.photos.append(EvalPhoto(known, found))
                keys.append(known)
            if keys:
                inputs.queries.append(query)
                inputs.relevant.append(keys)
            else:
                inputs.dropped_queries += 1
    for gnd, images in revisited:
        dataset = load_revisited(gnd, images)
        missing = dataset.missing_images()
        if missing:
            raise RevisitedFileError(
                f"{dataset.name}: {len(missing)} images are missing from {dataset.images_dir} "
                f"(the first: {missing[0].name})"
            )
        inputs.revisited.append(dataset)
    return inputs
