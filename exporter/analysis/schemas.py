"""Which feature schema applies to which model, or, without one, what traffic suggests.

A schema file with `model: m` applies to model m; one without applies to every
model no other file names. Without any schema the sidecar still works: rows are
flattened and a schema is inferred as they come (bounded), for the user to fetch
from `/schema` and edit.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter.errors import SettingsError
from exporter.features.compute import FeatureBatch, compute_features
from exporter.schema import Schema, SchemaError, load_schema
from exporter.schema.inference import SchemaInference
from exporter.settings import Settings

# Schemaless mode keeps one inference per model: bounded, like the labels.
MAX_INFERRED_MODELS = 20
# Past this many rows a model's inferred schema has settled: later batches are sampled.
INFER_EVERY_ROW_UNTIL = 10_000
INFER_ONE_BATCH_IN = 10


@dataclass(frozen=True)
class SchemaSet:
    by_model: dict[str, Schema]
    default: Schema | None
    hash_key: bytes | None

    @classmethod
    def from_settings(cls, settings: Settings) -> SchemaSet:
        """Load and check every schema file; errors name the file and key."""
        by_model: dict[str, Schema] = {}
        default: Schema | None = None
        for path in settings.schemas:
            try:
                schema = load_schema(path)
            except SchemaError as exc:
                raise SettingsError(f"key 'schemas': {exc}") from None
            if schema.model is None:
                if default is not None:
                    raise SettingsError(
                        f"key 'schemas': {path}: a second schema without 'model:'; "
                        "expected at most one default schema"
                    )
                default = schema
            else:
                by_model[schema.model] = schema
        hash_key = _read_hash_key(settings.hash_key_file)
        hashed = [s for s in [*by_model.values(), default] if s is not None and s.hashed_features()]
        if hashed and hash_key is None:
            raise SettingsError(
                "key 'hash_key_file': expected a file with the secret key, because features "
                f"{', '.join(hashed[0].hashed_features())} have log: hash"
            )
        return cls(by_model, default, hash_key)

    def for_model(self, model: str) -> Schema | None:
        return self.by_model.get(model, self.default)


@dataclass
class FeatureStage:
    """Features and data-quality issues per row, or schema inference without a schema."""

    schemas: SchemaSet
    inferences: dict[str, SchemaInference] = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)
    _batches: int = 0

    def run(self, model: str, rows: list[dict[str, Any]]) -> FeatureBatch | None:
        if not rows:
            return None
        schema = self.schemas.for_model(model)
        if schema is not None:
            return compute_features(schema, rows, hash_key=self.schemas.hash_key)
        inference = self.inferences.get(model)
        if inference is None:
            if len(self.inferences) >= MAX_INFERRED_MODELS:
                return None
            inference = self.inferences[model] = SchemaInference()
        self._batches += 1
        if inference.rows_seen >= INFER_EVERY_ROW_UNTIL and self._batches % INFER_ONE_BATCH_IN:
            return None
        inference.update(rows)
        self.changed.add(model)
        return None

    def take_inferred(self) -> dict[str, Schema]:
        """Schemas inferred since the last call, by model."""
        models, self.changed = self.changed, set()
        # A model whose fields are all unusable so far has no schema yet, not an error.
        return {m: self.inferences[m].schema(model=m) for m in models if self.inferences[m].usable}


SCHEMALESS_KEY_FILE = "schemaless-hash.key"


def schemaless_hash_key(settings: Settings) -> bytes:
    """The key that hashes credential-like fields of schemaless rows: `hash_key_file` when
    set, else a random key kept in the spool directory (created once, readable by its
    owner only), so hashes stay the same across restarts and server processes."""
    configured = _read_hash_key(settings.hash_key_file)
    if configured is not None:
        return configured
    root = Path(settings.spool_dir)
    root.mkdir(parents=True, exist_ok=True)
    path = root / SCHEMALESS_KEY_FILE
    if not path.exists():
        draft = root / f".{SCHEMALESS_KEY_FILE}.{os.getpid()}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(secrets.token_hex(32).encode())
        try:
            os.link(draft, path)  # atomic: of two processes starting at once, one key wins
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_bytes().strip()


def _read_hash_key(path: str) -> bytes | None:
    if not path:
        return None
    try:
        key = Path(path).read_bytes().strip()
    except OSError as exc:
        raise SettingsError(f"key 'hash_key_file': cannot read {path}: {exc.strerror}") from None
    if len(key) < 16:
        raise SettingsError(f"key 'hash_key_file': {path}: expected a key of at least 16 bytes")
    return key
