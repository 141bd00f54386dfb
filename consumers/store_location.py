"""Where batch jobs read landed outcomes: the local `<data_dir>/outcomes`, or a URI of that folder.

A URI goes through `pyarrow.fs` (file://, s3://, gs://, hdfs://, abfs://; credentials from the
usual environment of each, e.g. AWS_ACCESS_KEY_ID or an instance role); a scheme pyarrow does not
know is tried through fsspec, when fsspec and its implementation are installed. The layout is
the worker's: `property_id=<id>/date=<day>/*.parquet`. A URI store is a copy the worker does not
write to, so it is read as one dataset (no snapshot per date folder as in store_scan.py).
"""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from consumers.paths import encode_segment, outcomes_root
from consumers.store_scan import DATE_PREFIX, PROPERTY_PREFIX, Scan
from schemas.errors import ConfigError

_DATE_PARTITIONING = ds.partitioning(pa.schema([("date", pa.date32())]), flavor="hive")


def is_uri(location: str | Path) -> bool:
    return "://" in str(location)


def store_filesystem(data_dir: str | Path, store: str | None = None) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path of the outcomes folder on it)."""
    if not store:
        return pafs.LocalFileSystem(), str(outcomes_root(data_dir))
    if not is_uri(store):
        return pafs.LocalFileSystem(), str(Path(store))
    try:
        return pafs.FileSystem.from_uri(store)
    except ValueError as exc:  # pyarrow's ArrowInvalid: a scheme it does not know
        return _fsspec(store, exc)


def _fsspec(store: str, arrow_error: Exception) -> tuple[pafs.FileSystem, str]:
    try:
        import fsspec
        filesystem, path = fsspec.core.url_to_fs(store)
    except ImportError:
        raise ConfigError(f"BOOKLOOP_STORE_URI={store!r}: pyarrow.fs cannot open it ({arrow_error}) and fsspec "
                          "is not installed") from None
    except Exception as exc:  # unknown protocol, missing implementation package
        raise ConfigError(f"BOOKLOOP_STORE_URI={store!r}: neither pyarrow.fs ({arrow_error}) nor fsspec ({exc}) "
                          "can open it") from None
    return pafs.PyFileSystem(pafs.FSSpecHandler(filesystem)), path


def describe(data_dir: str | Path, store: str | None = None) -> str:
    return store or str(outcomes_root(data_dir))


def subfolders(filesystem: pafs.FileSystem, path: str) -> list[str] | None:
    """Names of the folders directly under `path`; None when `path` is not a folder."""
    info = filesystem.get_file_info(path)
    if info.type != pafs.FileType.Directory:
        return None
    entries = filesystem.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    return [entry.base_name for entry in entries if entry.type == pafs.FileType.Directory]


def scan_store(store: str, property_id: str, columns: list[str] | None) -> Scan | None:
    """Like store_scan.scan over a store at a path or URI: the property's rows (None: no such property)."""
    filesystem, root = store_filesystem("", store)
    folder = f"{root.rstrip('/')}/{PROPERTY_PREFIX}{encode_segment(property_id)}"
    days = [name for name in subfolders(filesystem, folder) or [] if name.startswith(DATE_PREFIX)]
    if not days:
        return None
    dataset = ds.dataset(folder, filesystem=filesystem, format="parquet", partitioning=_DATE_PARTITIONING)
    table = dataset.to_table(columns=columns)
    size = sum(info.size or 0 for info in filesystem.get_file_info(dataset.files))
    return Scan(table, size)
