"""Argon2id password hashing, run in worker threads so the event loop keeps serving."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from user_service.config import Settings

T = TypeVar("T")


class Passwords:
    def __init__(
        self,
        *,
        time_cost: int,
        memory_cost: int,
        parallelism: int,
        max_concurrency: int,
    ) -> None:
        # argon2-cffi's PasswordHasher is Argon2id by default.
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism
        )
        self._slots = asyncio.Semaphore(max_concurrency)
        # Verified against when the e-mail is unknown, so that answer costs as much as a
        # wrong password and timing does not reveal which e-mails have accounts.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    @classmethod
    def from_settings(cls, settings: Settings) -> Passwords:
        return cls(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_cost,
            parallelism=settings.argon2_parallelism,
            max_concurrency=settings.argon2_max_concurrency,
        )

    async def _run(self, fn: Callable[[], T]) -> T:
        async with self._slots:
            return await asyncio.to_thread(fn)

    async def hash(self, password: str) -> str:
        return await self._run(lambda: self._hasher.hash(password))

    async def verify(self, password_hash: str, password: str) -> bool:
        def check() -> bool:
            try:
                return self._hasher.verify(password_hash, password)
            except (VerificationError, InvalidHashError):
                return False

        return await self._run(check)

    async def verify_dummy(self, password: str) -> None:
        await self.verify(self._dummy_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True
