"""The fleet's services built as `make up` configures them, for tests that read what each
service really registers (its event handlers, its /internal routes)."""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest
from fastapi import FastAPI

from flow_shared.services import ServiceSpec, load_service_specs

ROOT = Path(__file__).resolve().parents[2]
FLOWCTL = ROOT / "scripts" / "flowctl.py"
SPECS = load_service_specs(ROOT)


def load_flowctl() -> ModuleType:
    spec = importlib.util.spec_from_file_location("flowctl_for_deploy_tests", FLOWCTL)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def flowctl_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """Each service's environment exactly as flowctl starts it (with a JWT key of its own)."""
    flowctl = load_flowctl()
    config = flowctl.load_config(flowctl.EXAMPLE_ENV_FILE)
    config["JWT_KEYS_DIR"] = str(tmp_path_factory.mktemp("keys"))
    fleet = flowctl.Fleet(config)
    fleet.ensure_keys()
    return {spec.name: fleet.service_env(spec) for spec in fleet.services}


def build_service_app(spec: ServiceSpec, env: dict[str, str]) -> FastAPI:
    """The app `create_app` builds under `env` (nothing is started)."""
    main = importlib.import_module(f"{spec.package}.main")
    config = importlib.import_module(f"{spec.package}.config")
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        app: FastAPI = main.create_app(config.Settings(_env_file=None))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return app


@pytest.fixture(scope="session")
def fleet_apps(flowctl_env: dict[str, dict[str, str]]) -> dict[str, FastAPI]:
    return {spec.name: build_service_app(spec, flowctl_env[spec.name]) for spec in SPECS}
