"""Fill each class folder up to its target: search the sources in turn, download, verify, record."""

from __future__ import annotations

import sys
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]

from dataset.candidate import Candidate, Rejected, Source, SourceError
from dataset.fetch import download
from dataset.http import HostUnreachableError, HttpError, PoliteSession
from dataset.manifest import Manifest
from dataset.verify import ImageRejectedError, verify_image


@dataclass
class ClassReport:
    """What happened to one class: counts, and the reasons of rejections and failures."""

    class_id: str
    target: int
    downloaded: int = 0
    skipped: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)

    @property
    def have(self) -> int:
        """Files of this class on disk and in the manifest after the run."""
        return self.downloaded + self.skipped


@dataclass
class Summary:
    """The whole run: one report per class, and the sources that could not be used (with the message)."""

    reports: list[ClassReport] = field(default_factory=list)
    unusable: dict[str, str] = field(default_factory=dict)
    network_errors: int = 0

    @property
    def downloaded(self) -> int:
        """Files fetched by this run."""
        return sum(report.downloaded for report in self.reports)

    def exit_code(self) -> int:
        """1 only when something was missing and nothing at all could be fetched because of the network."""
        incomplete = any(report.have < report.target for report in self.reports)
        return 1 if incomplete and self.downloaded == 0 and self.network_errors else 0


@dataclass
class _Stream:
    source: Source
    items: Iterator[Candidate | Rejected]


class Runner:
    """Downloads photos for classes from a list of sources, sharing one polite session."""

    def __init__(self, session: PoliteSession, sources: Sequence[Source], images_dir: Path) -> None:
        self.session = session
        self.sources = list(sources)
        self.images_dir = images_dir
        self.summary = Summary()

    def _disable(self, source: Source, message: str, *, network: bool) -> None:
        if source.name not in self.summary.unusable:
            self.summary.unusable[source.name] = message
            tqdm.write(f"{source.name}: {message}", file=sys.stderr)
        if network:
            self.summary.network_errors += 1

    def _adopt(self, candidate: Candidate, folder: Path, manifest: Manifest) -> bool:
        """Record a file left on disk by an interrupted run (renamed, not yet in the manifest)."""
        path = folder / candidate.file_name
        if not path.is_file():
            return False
        try:
            verify_image(
                path, expected_format=candidate.expected_format, expected_aspect=candidate.expected_aspect
            )
        except ImageRejectedError:
            return False
        manifest.add(candidate.file_name, candidate.attribution())
        return True

    def run_class(self, class_id: str, terms: Sequence[str], target: int) -> ClassReport:
        """Bring `<images_dir>/<class_id>/` up to `target` files; already present files are not fetched.

        A class folder this run created and left empty (offline, nothing found) is removed again."""
        folder = self.images_dir / class_id
        created = not folder.is_dir()
        folder.mkdir(parents=True, exist_ok=True)
        try:
            return self._fill(class_id, folder, terms, target)
        finally:
            if created and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()

    def _fill(self, class_id: str, folder: Path, terms: Sequence[str], target: int) -> ClassReport:
        for stale in folder.glob(".*.part"):
            stale.unlink(missing_ok=True)
        manifest = Manifest.load(folder)
        report = ClassReport(class_id, target, skipped=len(manifest.present()))
        self.summary.reports.append(report)
        if report.have >= target or all(s.name in self.summary.unusable for s in self.sources):
            return report
        streams = deque(
            _Stream(source, source.search(term))
            for term in terms
            for source in self.sources
            if source.name not in self.summary.unusable
        )
        seen: set[str] = set()
        with tqdm(total=target, initial=report.have, desc=class_id, unit="photo", leave=True) as progress:
            while streams and report.have < target:
                stream = streams.popleft()
                if stream.source.name in self.summary.unusable:
                    continue
                try:
                    item = next(stream.items)
                except StopIteration:
                    continue
                except HostUnreachableError as err:
                    self._disable(stream.source, str(err), network=True)
                    continue
                except HttpError as err:
                    self._disable(stream.source, f"search failed: {err}", network=True)
                    continue
                except SourceError as err:
                    self._disable(stream.source, f"search failed: {err}", network=False)
                    continue
                streams.append(stream)
                if isinstance(item, Rejected):
                    report.rejected[item.reason] += 1
                    continue
                if item.key in seen or manifest.has(item.file_name):
                    continue
                seen.add(item.key)
                if self._adopt(item, folder, manifest):
                    report.skipped += 1
                    progress.update(1)
                    continue
                if self._fetch(item, folder, manifest, report, stream.source):
                    report.downloaded += 1
                    progress.update(1)
        return report

    def _fetch(
        self, candidate: Candidate, folder: Path, manifest: Manifest, report: ClassReport, source: Source
    ) -> bool:
        try:
            download(self.session, candidate, folder)
        except ImageRejectedError as err:
            report.rejected[_category(str(err))] += 1
            tqdm.write(f"rejected {folder.name}/{candidate.file_name}: {err}", file=sys.stderr)
            return False
        except HttpError as err:
            report.failed[f"HTTP {err.status}"] += 1
            self.summary.network_errors += 1
            tqdm.write(f"failed {folder.name}/{candidate.file_name}: HTTP {err.status}", file=sys.stderr)
            return False
        except HostUnreachableError as err:
            report.failed["host unreachable"] += 1
            self._disable(source, str(err), network=True)
            return False
        manifest.add(candidate.file_name, candidate.attribution())
        return True


def _category(reason: str) -> str:
    """Group per-file rejection messages into summary lines ('truncated download (10 of 20 bytes)' -> ...)."""
    return reason.split(" (", 1)[0]
