"""Reading a window of the input log into a `WindowSummary`, from SQLite or Elasticsearch.

`open_window_reader(store_url)` picks the store as the sidecar does (`exporter.store`):
sqlite:///... is read whole and summarised (`windows.sqlite`), http(s)://... is
aggregated in the cluster (`windows.elasticsearch`). Both give the same summary of the
same records (`windows.summary`): counts on the baseline's bins, out-of-range counts,
categories, the prediction column, a row sample and the labelled rows. What both
readers share is in `windows.spec`.
"""

from __future__ import annotations

from typing import Any

from stats_service.windows.spec import WindowReader


def open_window_reader(store_url: str, **elasticsearch_options: Any) -> WindowReader:
    """A reader for the sidecar's store URL; `elasticsearch_options` are
    `ElasticsearchConfig` fields (index_prefix, credentials, ...), ignored for SQLite.
    Nothing is connected yet: a store that is down fails the first `read`, not this."""
    if store_url.startswith("sqlite:"):
        from stats_service.windows.sqlite import SqliteWindowReader

        return SqliteWindowReader.from_url(store_url)
    from stats_service.windows.elasticsearch import ElasticsearchWindowReader

    return ElasticsearchWindowReader.from_url(store_url, **elasticsearch_options)
