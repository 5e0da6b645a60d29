"""``--base-url``: one OpenAI-compatible server, or several serving the same model.

Several servers are one comma-separated value (``http://a:8000/v1,http://b:8000/v1``;
a YAML config may give a list), so every command's single ``base_url`` option takes a
pool without a new option. The ``openai:`` backend spreads requests over the pool.
Kept free of the ``openai`` package: configs check their URLs with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

from augtool.errors import OptionError


def parse_base_urls(value: str | Sequence[str], option: str = "base_url") -> list[str]:
    """The server URLs of a ``--base-url`` value (comma-separated or a list), each checked
    (http or https, a host, no duplicates) and without a trailing slash."""
    parts = value.split(",") if isinstance(value, str) else [str(item) for item in value]
    urls: list[str] = []
    for part in (item.strip() for item in parts):
        if not part:
            raise OptionError(option, "has an empty server URL (a stray comma?)")
        split = urlsplit(part)
        if split.scheme not in ("http", "https") or not split.hostname:
            raise OptionError(
                option, f"{redact_url(part)!r} is not an http(s) URL, e.g. http://127.0.0.1:8000/v1"
            )
        try:
            split.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise OptionError(option, f"{redact_url(part)!r} has an invalid port") from None
        url = part.rstrip("/")
        if url in urls:
            raise OptionError(option, f"lists {redact_url(url)} twice")
        urls.append(url)
    if not urls:
        raise OptionError(option, "needs at least one server URL")
    return urls


def normalize_base_url(value: str | None, option: str = "base_url") -> str | None:
    """A config's ``base_url`` checked and in canonical form (``None`` or empty: the
    default server)."""
    if value is None or not value.strip():
        return None
    return ",".join(parse_base_urls(value, option))


def redact_url(url: str) -> str:
    """``url`` without a ``user:password@`` part, for messages (secrets are never shown)."""
    try:
        split = urlsplit(url)
    except ValueError:
        return url
    if "@" not in split.netloc:
        return url
    host = split.netloc.rsplit("@", 1)[1]
    return urlunsplit((split.scheme, f"***@{host}", split.path, split.query, split.fragment))
