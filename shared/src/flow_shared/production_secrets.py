"""Production refuses placeholder secrets: empty, short, or shipped in the repository.

The example values (.env.example, .env.production.template) are public, so a
deployment that still carries one is open to anyone who has read the repository.
Services may run without the repository, so the shipped values are kept here as
SHA-256 digests; shared/tests/test_config.py re-derives them from the two files and
fails when one is missing here. Values earlier versions shipped stay in the list: a
deployment may still carry them.
"""

from __future__ import annotations

import hashlib
import re
import urllib.parse
from collections.abc import Iterable, Iterator

from pydantic import BaseModel, SecretStr

MIN_SECRET_BYTES = 32

# SHA-256 of every secret value .env.example and .env.production.template ship or have
# shipped (passwords inside URLs included); `python -m flow_shared.production_secrets`
# prints this list with the files' current values added.
EXAMPLE_SECRET_SHA256: frozenset[str] = frozenset(
    {
        "06d2422eb78f542e0c66541ee75db0083f192f3c73d2eddfd9e0c1ac38cee997",
        "0a38714b1b93f1c95cfaedd2f45b13ba2c2d565baf0fc97bef5ff16dc2cdc09a",
        "1632a4794677902d74ba43ddf66c80d121ddd88833d9382c5802a1c4a6ff3a5a",
        "2851e6e1d0b72537aa740a353a0fde247dacf2e4997b4e2ffdbc9aea8f4f3aa5",
        "29ae659d5ccc06d3e33ff2f02ac46874a8d96687be61c01a97c9c90228f9d4f0",
        "2ce691b6f535c6cde2bad438b9b413b4f1eb1ad73e507168189ae08d147845d4",
        "335fb6a45fe76a58d871e09e288465d900e2eb878d6b4c9c28f03f0492e725a0",
        "3805ae84af1bba61386d790c5e325247cfe80dd8f9a0cd938f5f263bbbf476b5",
        "3832a07f6d929ba945fd8e4c5ca18db8b347b5a77eba70388c65da7052d058db",
        "442cbf3fdf0f24777036e660c32d6e4b5f7621231bff2754673c5a188a2f614a",
        "4473361dd33e1fd63a8e98e2cb61fbab932e5b97e918ab47f941da6fef2b5673",
        "4c1f610da5df6b6165c640aa73e80dd3ecf32cf5df1f90e61602e6c0ee4de859",
        "4dbea2cbbac1eed1acc5227396a688253a02b990dee0a7fb776c36ef45437268",
        "59ec9a79be034f25874f94f20e2aea50a0b2918e833a71bc029f348388a29b78",
        "6b747767813800074f4866b55ec1d11a4a742f314951558c7779a7369caef7f8",
        "7b5bd89d0c37dd0ddf948076a772ae3881414d6c21be8c19a99e89262d13c49e",
        "7c06ed8db0ab5fce19db0e65741c6e6bbf8114f24bd9151e879bc8a4a2d32124",
        "84983c60f7daadc1cb8698621f802c0d9f9a3c3c295c810748fb048115c186ec",
        "855152b6b049e30e55665ee3f15bb0a5dfe0890b45043cf46c5007708fb5f6f0",
        "8a9bd519d80110d173fc31a0364afb09b986c8941cee7ac9f21f2fd3f72164a6",
        "926b757cc09ce8d7b60b568e9bbd41c60d5533914edc8eb3bb4e9953feb38af7",
        "a0ad0c4dfab04f17c7ce63de00c6b9d3a40b8332475aca1a8132517286958222",
        "b154538ab066aee14b28306a30472337b2896e0f00c0fecf99e1e07ac92a4f00",
        "b5e797dc3fc742d09db06541cb48978b862bd3823a49e4e3f65e9873f7c8e3b9",
        "b7b0a9968978c377d94bfe3eaf0ff8de4a11fc95f23c4eb9bb395957a2f9fef3",
        "b9bb64dc2d4d2ea1fc42b399a1482c83093d6dc09e6fce44c170946b86aae5f9",
        "c21a1a14ad8595069742037ca4ed0308b5506db1b30cc90a8f6c3264adfbe154",
        "c2594e2570976a044ba1a5496fa46cc5e56b72bf3be84115850648e3076c7666",
        "cf8e8884858bae3d101e4727dbb105addfd481cb6baa8ae7757934fa58ef21ab",
        "d31204c36fba58362599c3f0183dcc6f949932345a25b48a6e78dbb3fcec00af",
        "d95c8e35ca82b504bc71f3584173f23290466699b11d383c40f147364d5795f9",
        "dd44dfa7f7428122d9d2252efbd1b0aa3b57debca4e6b8a0012bc694d14f4696",
        "e185a878f307a14bb0ff117ebc7ccbfbf34a454ff71c60ab9f9a4f6929f4bcb4",
        "f63b39ec7575555038211c7d184b5f6b07ae44f2d59dd886a4764a8b3bb1e8fa",
        "f81256c8c4e522d1993605fe8d1cef747ba6dd32cd6bfc69b186c836ed92fe33",
        "fa5f8c026f72b94bd2929f22840b86084792c1853432b884fd31b3d4d62077f9",
    }
)

# Variables whose value is a secret, by name: passwords, secrets, tokens, keys (not the
# directories keys live in).
_SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|_KEYS?)(_|$)")
_NOT_SECRET_SUFFIXES = ("_DIR", "_FILE", "_PATH")


def is_secret_variable(name: str) -> bool:
    return bool(_SECRET_NAME.search(name)) and not name.endswith(_NOT_SECRET_SUFFIXES)


def url_password(value: str) -> str | None:
    """The password inside a URL (`scheme://user:password@host`), or None when it has none."""
    if "://" not in value:
        return None
    try:
        password = urllib.parse.urlsplit(value).password
    except ValueError:
        return None
    return urllib.parse.unquote(password) if password is not None else None


def env_file_secret_values(text: str) -> set[str]:
    """The secret values of an env file: secret-named variables and passwords in URLs."""
    values: set[str] = set()
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        value = value.strip().strip('"').strip("'")
        password = url_password(value)
        if password:
            values.add(password)
        elif is_secret_variable(name.strip()) and value:
            values.add(value)
    return values


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def secret_weakness(value: str) -> str | None:
    """Why `value` cannot be a production secret, or None when it can."""
    if not value:
        return "is empty"
    if digest(value) in EXAMPLE_SECRET_SHA256:
        return "is a value shipped in the repository's example files"
    if len(value.encode()) < MIN_SECRET_BYTES:
        return f"is shorter than {MIN_SECRET_BYTES} bytes"
    return None


def _secrets_of(variable: str, value: object) -> Iterator[tuple[str, str]]:
    """(what to call it, the secret) for a settings value that holds secrets."""
    if isinstance(value, SecretStr):
        secret = value.get_secret_value()
        if "://" in secret:
            # A URL's secret is its password; a URL without one has nothing to judge.
            password = url_password(secret)
            if password is not None:
                yield f"{variable} (its password)", password
        else:
            yield variable, secret
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _secrets_of(f"{variable}[{key}]", item)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _secrets_of(f"{variable}[{index}]", item)


def weak_secrets(settings: BaseModel) -> list[str]:
    """One line per weak secret in `settings`, naming its variable, never its value."""
    problems: list[str] = []
    for field in type(settings).model_fields:
        for variable, secret in _secrets_of(field.upper(), getattr(settings, field)):
            weakness = secret_weakness(secret)
            if weakness is not None:
                problems.append(f"{variable} {weakness}")
    return problems


def refuse_weak_secrets(settings: BaseModel) -> None:
    problems = weak_secrets(settings)
    if problems:
        raise ValueError(
            "production needs real secrets (scripts/generate-api-keys.sh makes them): "
            + "; ".join(problems)
        )


def _digests_with(paths: Iterable[str]) -> list[str]:
    from pathlib import Path

    values: set[str] = set()
    for path in paths:
        values |= env_file_secret_values(Path(path).read_text())
    return sorted(EXAMPLE_SECRET_SHA256 | {digest(value) for value in values})


if __name__ == "__main__":
    for line in _digests_with((".env.example", ".env.production.template")):
        print(f'        "{line}",')
