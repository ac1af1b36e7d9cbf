"""Static checks of the docker compose stack: docker-compose.yaml, Dockerfile, .dockerignore, docker/.

No Docker engine runs where these tests run, so the stack is checked by construction: the compose
file against the Compose Specification JSON schema (from ``../shared/schemas``), and the wiring
between the services, the image, the demo keystore and the ``jwt_bearer_default`` connection.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
import urllib.request
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from tests.compose import COMPOSE_FILE, REPO_ROOT, command_argv, environment, option, volumes, with_defaults

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
#: The stack's page of the documentation (the README links to it): its services list must match the file.
COMPOSE_PAGE = REPO_ROOT / "docs" / "compose.md"
INIT_SCRIPT = REPO_ROOT / "docker" / "airflow-init.sh"
KEYSTORE_SCRIPT = REPO_ROOT / "docker" / "make_keystore.py"
SCHEMA_FILE = REPO_ROOT.parent / "shared" / "schemas" / "compose-spec.json"

AIRFLOW_IMAGE = "apache/airflow:3.3.2-python3.11"
DAGS_TARGET = "/opt/airflow/dags"
CONN_VAR = "AIRFLOW_CONN_JWT_BEARER_DEFAULT"
# The long-running Airflow components: the command each service passes to the `airflow` CLI.
AIRFLOW_COMPONENTS = {"api-server", "scheduler", "dag-processor", "triggerer", "celery worker"}
SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def _airflow_component(service: dict) -> str | None:
    """The Airflow component a service runs (as in AIRFLOW_COMPONENTS), or None."""
    words = command_argv(service.get("command"))
    if words[:1] == ["airflow"]:
        words = words[1:]
    for length in (2, 1):
        if " ".join(words[:length]) in AIRFLOW_COMPONENTS:
            return " ".join(words[:length])
    return None


def _image_tag(image: str) -> str | None:
    """The tag of an image reference (None when it has none); a digest counts as a tag."""
    if "@" in image:
        return image.split("@", 1)[1]
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def _dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, with continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, arguments = line.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def _from_image(arguments: str) -> str:
    """The image (or stage) of a FROM instruction's arguments."""
    return next(word for word in arguments.split() if not word.startswith("--"))


def _repo_copy_destinations(instructions: list[tuple[str, str]]) -> set[str]:
    """Where the Dockerfile copies the whole build context (`COPY [--flags] . <dest>`)."""
    destinations = set()
    for keyword, arguments in instructions:
        words = [word for word in shlex.split(arguments) if not word.startswith("--")]
        if keyword in {"COPY", "ADD"} and len(words) >= 2 and any(w in {".", "./"} for w in words[:-1]):
            destinations.add(str(PurePosixPath(words[-1])))
    return destinations


def _documented_compose_services(text: str) -> list[str]:
    """Service names listed in the documentation's section whose heading mentions docker compose.

    The list is either a fenced code block holding one service name per line (``# comments``
    allowed) or a Markdown table with a column whose header mentions "service".
    """
    lines = text.splitlines()
    headings: list[tuple[int, int, str]] = []  # (line index, level, title), outside code fences
    fence = None
    for index, line in enumerate(lines):
        marker = re.match(r"^\s{0,3}(`{3,}|~{3,})", line)
        if marker:
            if fence is None:
                fence = marker.group(1)
            elif marker.group(1)[0] == fence[0] and len(marker.group(1)) >= len(fence):
                fence = None
            continue
        heading = re.match(r"^\s{0,3}(#{1,6})\s+(.*?)[\s#]*$", line)
        if fence is None and heading:
            headings.append((index, len(heading.group(1)), heading.group(2)))

    section = next(
        ((index, level) for index, level, title in headings if re.search(r"docker[\s-]*compose", title, re.I)),
        None,
    )
    if section is None:
        pytest.fail(
            'docs/compose.md has no section under a heading containing "Docker Compose": add one that '
            "lists the stack's services in a fenced block (one name per line) or a table"
        )
    start, level = section
    end = next((index for index, lvl, _ in headings if index > start and lvl <= level), len(lines))
    body = lines[start + 1 : end]

    names: list[str] = []
    # Fenced blocks whose every non-empty line is one service name.
    index = 0
    while index < len(body):
        marker = re.match(r"^\s{0,3}(`{3,}|~{3,})", body[index])
        if not marker:
            index += 1
            continue
        block, index = [], index + 1
        while index < len(body) and not body[index].strip().startswith(marker.group(1)):
            block.append(body[index].split("#", 1)[0].strip().removeprefix("- ").strip())
            index += 1
        index += 1
        entries = [entry for entry in block if entry]
        if entries and all(SERVICE_NAME.match(entry) for entry in entries):
            names.extend(entries)
    # Tables with a "service" column.
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")] for line in body if line.strip().startswith("|")
    ]
    column = None
    for row in rows:
        if all(re.fullmatch(r":?-+:?", cell) for cell in row if cell):
            continue  # the separator row
        service_columns = [i for i, cell in enumerate(row) if "service" in cell.lower()]
        if column is None and service_columns:
            column = service_columns[0]  # the header row
        elif column is not None and column < len(row):
            names.append(row[column].strip("`*_ "))
    return names


# --------------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    assert COMPOSE_FILE.is_file(), f"{COMPOSE_FILE.name} is missing at the repository root"
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(document, dict), "docker-compose.yaml is not a YAML mapping"
    return document


@pytest.fixture(scope="module")
def services(compose: dict) -> dict[str, dict]:
    services = compose.get("services")
    assert isinstance(services, dict), "docker-compose.yaml has no services"
    assert services, "docker-compose.yaml has no services"
    return services


@pytest.fixture(scope="module")
def components(services: dict[str, dict]) -> dict[str, dict]:
    """The services running an Airflow component, by name."""
    return {name: svc for name, svc in services.items() if _airflow_component(svc)}


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    assert DOCKERFILE.is_file(), "Dockerfile is missing at the repository root"
    return _dockerfile_instructions(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def authserver(services: dict[str, dict]) -> list[str]:
    """The command of the service that runs `python -m devserver`."""
    commands = [
        command_argv(svc.get("command"))
        for svc in services.values()
        if command_argv(svc.get("command"))[:3] == ["python", "-m", "devserver"]
    ]
    assert len(commands) == 1, f"expected one service running `python -m devserver`, found {len(commands)}"
    return commands[0]


@pytest.fixture(scope="module")
def connection(components: dict[str, dict]) -> dict:
    assert components, "no service runs an Airflow component"
    values = {name: environment(svc).get(CONN_VAR) for name, svc in components.items()}
    missing = sorted(name for name, value in values.items() if not value)
    assert not missing, f"{CONN_VAR} is not set on {missing}"
    assert len(set(values.values())) == 1, f"{CONN_VAR} differs between Airflow services"
    try:
        return json.loads(next(iter(values.values())))
    except json.JSONDecodeError as exc:
        pytest.fail(f"{CONN_VAR} is not valid JSON: {exc}")


# --------------------------------------------------------------------------------------------------
# The compose file
# --------------------------------------------------------------------------------------------------


def test_compose_file_validates_against_compose_spec_schema(compose: dict) -> None:
    if not SCHEMA_FILE.is_file():
        pytest.skip(f"Compose Specification schema not found at {SCHEMA_FILE} (../shared is absent)")
    schema = json.loads(SCHEMA_FILE.read_text())
    assert "draft-07" in schema.get("$schema", ""), "the schema no longer declares JSON Schema draft 7"
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "docker-compose.yaml breaks the Compose Specification:\n" + "\n".join(
        f"  {'/'.join(map(str, error.path)) or '(root)'}: {error.message}" for error in errors
    )


def test_compose_file_has_no_obsolete_version_key(compose: dict) -> None:
    assert "version" not in compose, "the top-level `version` key is obsolete in the Compose Specification"


def test_the_docs_docker_compose_section_lists_existing_services(services: dict[str, dict]) -> None:
    assert COMPOSE_PAGE.is_file(), "docs/compose.md is missing: it must have a section listing the services"
    listed = _documented_compose_services(COMPOSE_PAGE.read_text())
    assert listed, (
        "the Docker Compose section of docs/compose.md lists no service: use a fenced block with one "
        "service name per line, or a table with a 'Service' column"
    )
    unknown = [name for name in listed if name not in services]
    assert not unknown, f"docs/compose.md lists services that docker-compose.yaml lacks: {unknown}"


def test_a_documented_service_the_file_lacks_is_found(services: dict[str, dict]) -> None:
    page = "# Docker Compose stack\n\n```text\npostgres\nairflow-webserver\n```\n\n# Next\n\n```text\nredis\n```\n"
    listed = _documented_compose_services(page)
    assert listed == ["postgres", "airflow-webserver"]  # the section only, not the next one
    assert [name for name in listed if name not in services] == ["airflow-webserver"]


def test_stack_runs_every_airflow_component_with_celery(services: dict, components: dict) -> None:
    running = {_airflow_component(svc) for svc in components.values()}
    assert running == AIRFLOW_COMPONENTS, f"Airflow components run: {sorted(running)}"
    for name, svc in components.items():
        env = environment(svc)
        assert env.get("AIRFLOW__CORE__EXECUTOR") == "CeleryExecutor", f"{name}: executor"
        broker = urlsplit(env.get("AIRFLOW__CELERY__BROKER_URL", ""))
        assert broker.scheme == "redis", f"{name}: Celery broker {broker.geturl()!r} is not Redis"
        assert broker.hostname in services, f"{name}: broker host {broker.hostname!r} is not a service"
        database = urlsplit(env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", ""))
        assert database.scheme.startswith("postgresql"), f"{name}: metadata database is not PostgreSQL"
        assert database.hostname in services, f"{name}: database host {database.hostname!r} is not a service"
        assert env.get("AIRFLOW__CORE__LOAD_EXAMPLES", "").lower() == "false", f"{name}: examples load"
        execution_api = urlsplit(env.get("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", ""))
        assert execution_api.hostname in services, f"{name}: execution API host is not a service"
        assert _airflow_component(services[execution_api.hostname]) == "api-server"
        assert env.get("AIRFLOW__API_AUTH__JWT_SECRET"), f"{name}: no shared AIRFLOW__API_AUTH__JWT_SECRET"
    secrets = {environment(svc).get("AIRFLOW__API_AUTH__JWT_SECRET") for svc in components.values()}
    assert len(secrets) == 1, "AIRFLOW__API_AUTH__JWT_SECRET differs between Airflow services"
    # Airflow signs its tokens with HS512 ([api_auth] jwt_algorithm); PyJWT warns on keys below 64 bytes.
    default_secret = with_defaults(secrets.pop() or "")
    assert len(default_secret.encode()) >= 64, f"the default jwt_secret has {len(default_secret)} bytes, not 64"


def test_every_build_is_the_repo_root_with_its_dockerfile(services: dict[str, dict]) -> None:
    builds = {name: svc["build"] for name, svc in services.items() if "build" in svc}
    assert builds, "no service builds the project's image"
    for name, build in builds.items():
        context = build if isinstance(build, str) else build.get("context", ".")
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        assert (REPO_ROOT / context).resolve() == REPO_ROOT, f"{name}: build context {context!r}"
        assert (REPO_ROOT / context / dockerfile).resolve() == DOCKERFILE, f"{name}: dockerfile {dockerfile!r}"
    assert DOCKERFILE.is_file(), "Dockerfile is missing at the repository root"


def test_dockerfile_builds_on_the_official_airflow_image(dockerfile: list[tuple[str, str]]) -> None:
    bases = [_from_image(args) for kw, args in dockerfile if kw == "FROM"]
    assert bases, "the Dockerfile has no FROM"
    assert bases[-1] == AIRFLOW_IMAGE, f"the final stage is FROM {bases[-1]!r}, not {AIRFLOW_IMAGE}"


def test_dockerfile_installs_the_provider_with_jks_extra(dockerfile: list[tuple[str, str]]) -> None:
    destinations = _repo_copy_destinations(dockerfile)
    assert destinations, "the Dockerfile never copies the repository (COPY . <dir>)"

    installed: list[tuple[str, set[str]]] = []  # (path, extras) given to pip install
    pip_lines = [args for kw, args in dockerfile if kw == "RUN" and re.search(r"\bpip install\b", args)]
    for arguments in pip_lines:
        for word in shlex.split(arguments):
            match = re.fullmatch(r"([^\[\s]+)\[([^\]]+)\]", word)
            if match:
                extras = {extra.strip() for extra in match.group(2).split(",")}
                installed.append((str(PurePosixPath(match.group(1))), extras))
    provider = [extras for path, extras in installed if path in destinations]
    assert provider, f"no `pip install <{' or '.join(sorted(destinations))}>[...]` in the Dockerfile"
    assert any("jks" in extras for extras in provider), f"the provider is installed with extras {provider}"
    assert any("devserver" in extras for extras in provider), "the devserver extra (authserver) is missing"
    assert any("redis" in extras for extras in provider), "the redis extra (token_cache: redis) is missing"
    assert any("apache-airflow-providers-celery" in line for line in pip_lines), (
        "the Celery worker needs apache-airflow-providers-celery installed in the image"
    )


def test_every_depends_on_target_exists(services: dict[str, dict]) -> None:
    edges = []
    for name, svc in services.items():
        depends_on = svc.get("depends_on") or {}
        targets = {target: {} for target in depends_on} if isinstance(depends_on, list) else depends_on
        edges.extend((name, target, (spec or {}).get("condition")) for target, spec in targets.items())
    assert edges, "no service depends on another"
    missing = [(name, target) for name, target, _ in edges if target not in services]
    assert not missing, f"depends_on names services that do not exist: {missing}"
    for name, target, condition in edges:
        assert name != target, f"{name} depends on itself"
        if condition == "service_healthy":
            assert "healthcheck" in services[target], f"{name} waits for {target} to be healthy: no healthcheck"
        if condition == "service_completed_successfully":
            restart = str(services[target].get("restart", "no"))
            assert restart in {"no", "False", "false"}, f"{name} waits for {target} to exit, which restarts"


def test_long_running_services_have_healthchecks(services: dict[str, dict]) -> None:
    one_shot = {
        target
        for svc in services.values()
        for target, spec in (svc.get("depends_on") or {}).items()
        if isinstance(spec, dict) and spec.get("condition") == "service_completed_successfully"
    }
    assert one_shot, "no one-shot init service (depends_on condition service_completed_successfully)"
    lacking = sorted(name for name in services if name not in one_shot and "healthcheck" not in services[name])
    assert not lacking, f"services without a healthcheck: {lacking}"


def test_connection_env_var_is_a_jwt_bearer_connection(connection: dict) -> None:
    assert connection.get("conn_type") == "jwt_bearer", f"conn_type is {connection.get('conn_type')!r}"
    from airflow.sdk import Connection

    parsed = Connection.from_json(json.dumps(connection), conn_id="jwt_bearer_default")
    assert parsed.conn_type == "jwt_bearer"
    assert parsed.extra_dejson.get("auth_url"), "the connection has no auth_url extra"
    assert parsed.extra_dejson.get("key_file"), "the connection has no key_file extra"


def test_connection_matches_authserver_and_demo_keystore(
    compose: dict,
    services: dict[str, dict],
    components: dict[str, dict],
    connection: dict,
    authserver: list[str],
) -> None:
    extra = connection.get("extra") or {}
    if isinstance(extra, str):
        extra = json.loads(extra)
    auth_service = next(n for n, s in services.items() if command_argv(s.get("command"))[:3] == authserver[:3])
    port = option(authserver, "--port")
    for url in (extra.get("auth_url", ""), connection.get("host", "")):
        parts = urlsplit(url)
        assert (parts.hostname, str(parts.port)) == (auth_service, port), f"{url!r} is not {auth_service}:{port}"
    assert option(authserver, "--client-id") == connection.get("login"), "client id differs from login"
    keystore = option(authserver, "--keystore")
    assert keystore == extra.get("key_file"), f"authserver reads {keystore}, connection {extra.get('key_file')}"
    assert option(authserver, "--keystore-password") == extra.get("keystore_password")

    # The one-shot init service creates that very keystore, into a volume the others mount.
    init = [svc for svc in services.values() if "JWT_DEMO_KEYSTORE" in environment(svc)]
    assert len(init) == 1, "one service must create the demo keystore (JWT_DEMO_KEYSTORE)"
    init_env = environment(init[0])
    assert init_env["JWT_DEMO_KEYSTORE"] == keystore
    assert init_env.get("JWT_DEMO_KEYSTORE_PASSWORD") == extra.get("keystore_password")
    key_dir = str(PurePosixPath(keystore).parent)
    init_mounts = {target: (source, read_only) for source, target, read_only in volumes(init[0])}
    assert key_dir in init_mounts, f"the init service does not mount {key_dir}"
    volume, read_only = init_mounts[key_dir]
    assert volume in (compose.get("volumes") or {}), f"{key_dir} is not on a named volume: {volume!r}"
    assert not read_only, f"the init service mounts {key_dir} read-only: it cannot write the keystore"
    for name, svc in [*components.items(), (auth_service, services[auth_service])]:
        mounts = {target: source for source, target, _ in volumes(svc)}
        assert mounts.get(key_dir) == volume, f"{name} does not mount volume {volume!r} at {key_dir}"


def test_connection_test_button_is_enabled_on_the_api_server(components: dict[str, dict]) -> None:
    api_servers = {n: s for n, s in components.items() if _airflow_component(s) == "api-server"}
    assert api_servers, "no service runs the api-server"
    for name, svc in api_servers.items():
        value = environment(svc).get("AIRFLOW__CORE__TEST_CONNECTION")
        assert value == "Enabled", f"{name}: AIRFLOW__CORE__TEST_CONNECTION is {value!r}, not 'Enabled'"


def test_api_server_on_host_port_8080_and_host_ports_unique(
    services: dict[str, dict], components: dict[str, dict]
) -> None:
    published: dict[str, list[str]] = {}
    for name, svc in services.items():
        for port in svc.get("ports") or []:
            if isinstance(port, dict):
                host, container = str(port.get("published", "")), str(port["target"])
            else:
                host, _, container = with_defaults(str(port)).rpartition(":")
            published.setdefault(host.rsplit(":", 1)[-1], []).append(f"{name}:{container}")
    api = [n for n, s in components.items() if _airflow_component(s) == "api-server"]
    assert published.get("8080") == [f"{api[0]}:8080"], f"host port 8080 goes to {published.get('8080')}"
    clashes = {host: users for host, users in published.items() if host and len(users) > 1}
    assert not clashes, f"host ports published twice: {clashes}"


def test_dags_folder_is_mounted_into_airflow_services(components: dict[str, dict]) -> None:
    assert (REPO_ROOT / "dags").is_dir(), "the dags/ folder is missing"
    for name, svc in components.items():
        mounts = {target: source for source, target, _ in volumes(svc)}
        assert DAGS_TARGET in mounts, f"{name} does not mount anything at {DAGS_TARGET}"
        source = (REPO_ROOT / mounts[DAGS_TARGET]).resolve()
        assert source == REPO_ROOT / "dags", f"{name} mounts {mounts[DAGS_TARGET]!r} at {DAGS_TARGET}"


def test_no_image_uses_the_latest_tag(services: dict[str, dict], dockerfile: list[tuple[str, str]]) -> None:
    images = {name: with_defaults(svc["image"]) for name, svc in services.items() if "image" in svc}
    assert images, "no service names an image"
    stages = set()
    for keyword, arguments in dockerfile:
        if keyword == "FROM":
            words = [word for word in arguments.split() if not word.startswith("--")]
            if words[0] not in stages:
                images[f"Dockerfile FROM {words[0]}"] = words[0]
            if len(words) == 3 and words[1].upper() == "AS":
                stages.add(words[2])
    for where, image in images.items():
        tag = _image_tag(image)
        assert tag, f"{where}: image {image!r} has no tag (it means latest)"
        assert tag != "latest", f"{where}: image {image!r} uses the latest tag"


# --------------------------------------------------------------------------------------------------
# The image's build context and the scripts of the stack
# --------------------------------------------------------------------------------------------------


def test_dockerignore_drops_local_state_and_keeps_the_sources() -> None:
    assert DOCKERIGNORE.is_file(), ".dockerignore is missing"
    patterns = [
        line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]
    for required in (".git", ".venv", "**/__pycache__", "**/*.p12", "**/*.jks", "**/*.jceks", "**/*.keystore"):
        assert required in patterns, f".dockerignore does not exclude {required}"
    assert not any(p.startswith("!") for p in patterns), "exceptions (!) make this check unreliable"
    needed = ["pyproject.toml", "README.md", "airflow_jwt_provider/__init__.py", "devserver", "docker"]
    for path in needed:
        for pattern in patterns:
            bare = pattern.removeprefix("**/")
            drops = PurePosixPath(path).match(bare) or path.startswith(bare.rstrip("/") + "/")
            assert not drops, f".dockerignore pattern {pattern!r} drops {path}, which the image needs"


def test_init_script_is_valid_bash_and_is_what_airflow_init_runs(services: dict[str, dict]) -> None:
    result = subprocess.run(["bash", "-n", str(INIT_SCRIPT)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"bash -n {INIT_SCRIPT.name}: {result.stderr}"
    commands = [command_argv(svc.get("command")) for svc in services.values()]
    in_image = [word for command in commands for word in command if word.endswith("/airflow-init.sh")]
    assert in_image, "no service runs docker/airflow-init.sh"
    # COPY . /opt/provider puts docker/airflow-init.sh at /opt/provider/docker/airflow-init.sh.
    copied_to = _repo_copy_destinations(_dockerfile_instructions(DOCKERFILE.read_text()))
    for path in in_image:
        assert any(path == f"{root}/docker/airflow-init.sh" for root in copied_to), f"{path} is not in the image"
    assert "airflow db migrate" in INIT_SCRIPT.read_text()


def _run_keystore_script(keystore: Path, password: str, home: Path) -> subprocess.CompletedProcess:
    """Run docker/make_keystore.py as airflow-init does, with no keytool on PATH (no JRE in the image)."""
    return subprocess.run(
        [sys.executable, str(KEYSTORE_SCRIPT), "--keystore", str(keystore), "--password", password],
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": str(Path(sys.executable).parent), "HOME": str(home)},
    )


def test_keystore_script_creates_then_keeps_the_demo_keystore_without_keytool(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.serialization import pkcs12

    keystore = tmp_path / "keys" / "demo.p12"
    created = _run_keystore_script(keystore, "changeit", tmp_path)
    assert created.returncode == 0, f"{created.stdout}\n{created.stderr}"
    assert keystore.is_file(), f"no keystore at {keystore}: {created.stdout}"
    key, certificate, _ = pkcs12.load_key_and_certificates(keystore.read_bytes(), b"changeit")
    assert key is not None, "the keystore holds no private key"
    assert certificate is not None, "the keystore holds no certificate"
    assert sorted(p.name for p in keystore.parent.iterdir()) == ["demo.p12"], "stray files beside the keystore"

    first = keystore.read_bytes()
    kept = _run_keystore_script(keystore, "changeit", tmp_path)
    assert kept.returncode == 0, kept.stderr
    assert keystore.read_bytes() == first, "a second `docker compose up` must keep the keystore"

    refused = _run_keystore_script(keystore, "wrong-password", tmp_path)
    assert refused.returncode == 1, "a keystore that does not open with the password must be an error"
    assert "password" in refused.stderr


def test_devserver_cli_accepts_the_authserver_options(authserver: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "devserver", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    flags = [word.split("=", 1)[0] for word in authserver[3:] if word.startswith("--")]
    assert flags, "the authserver command passes no options"
    unknown = [flag for flag in flags if flag not in result.stdout]
    assert not unknown, f"python -m devserver --help does not list {unknown}"


def test_stack_wiring_end_to_end_on_loopback(
    tmp_path: Path, services: dict[str, dict], connection: dict, authserver: list[str], monkeypatch
) -> None:
    """What the stack does at start-up, minus Docker: airflow-init's keystore script, the authserver
    with its compose options (loopback, free port, keystore in tmp), its healthcheck URL, and then
    the compose connection (authserver host and keystore path rewritten) getting a token."""
    from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook

    compose_keystore = option(authserver, "--keystore")
    keystore = tmp_path / "keys" / PurePosixPath(compose_keystore).name
    made = _run_keystore_script(keystore, option(authserver, "--keystore-password"), tmp_path)
    assert made.returncode == 0, made.stderr

    url_file = tmp_path / "authserver.url"
    replace = {"--host": "127.0.0.1", "--port": "0", "--keystore": str(keystore)}
    command = [replace.get(authserver[i - 1], word) if i else word for i, word in enumerate(authserver)]
    command = [sys.executable, *command[1:], "--url-file", str(url_file)]
    server = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(300):
            if url_file.exists() or server.poll() is not None:
                break
            time.sleep(0.1)
        assert url_file.exists(), f"the authserver did not start: {server.poll()=}"
        base_url = url_file.read_text().strip()

        auth_service = next(n for n, s in services.items() if command_argv(s.get("command"))[:3] == authserver[:3])
        health_url = command_argv(services[auth_service]["healthcheck"]["test"])[-1]
        with urllib.request.urlopen(base_url + urlsplit(health_url).path, timeout=10) as response:
            assert response.status == 200, f"healthcheck answered {response.status}"

        netloc = urlsplit(connection["extra"]["auth_url"]).netloc
        local = json.loads(
            json.dumps(connection).replace(f"http://{netloc}", base_url).replace(compose_keystore, str(keystore))
        )
        monkeypatch.setenv(CONN_VAR, json.dumps(local))
        ok, message = JwtBearerHook().test_connection()
        assert ok, message
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_the_stack_shares_tokens_through_the_broker_redis(components: dict[str, dict]) -> None:
    """[jwt_bearer] token_cache = redis on every Airflow service, through a redis connection to the broker's host."""
    for name, svc in components.items():
        env = environment(svc)
        assert env.get("AIRFLOW__JWT_BEARER__TOKEN_CACHE") == "redis", name
        conn_id = env.get("AIRFLOW__JWT_BEARER__TOKEN_CACHE_CONN_ID", "")
        uri = env.get(f"AIRFLOW_CONN_{conn_id.upper()}")
        assert uri, f"{name}: the token cache connection {conn_id!r} is not defined"
        cache, broker = urlsplit(uri), urlsplit(env["AIRFLOW__CELERY__BROKER_URL"])
        assert cache.scheme == "redis", f"{name}: {conn_id} is not a redis connection"
        assert (cache.hostname, cache.port) == (broker.hostname, broker.port), f"{name}: not the broker's Redis"
