"""Apache Kafka's prerequisites on this machine: a Java new enough, and Kafka's own jars, resolved by
Maven from Maven Central on first use (`kafka_pom.xml` beside this module names them and sets the
version) into a cache shared by every data directory and process (`kafka_cache_dir`).
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import importlib.resources
import logging
import os
import re
import shutil
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

from sandwich.platform.embedded.brokers import EmbeddedBrokerError

log = logging.getLogger("sandwich.platform.embedded.apache_kafka")

MIN_JAVA = 17
POM_RESOURCE = "kafka_pom.xml"
_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}
_STAMP = "complete.sha256"


def _pom_bytes() -> bytes:
    return importlib.resources.files(__package__).joinpath(POM_RESOURCE).read_bytes()


def kafka_version() -> str:
    """The Kafka version the shipped pom asks for (its `kafka.version` property)."""
    node = ET.fromstring(_pom_bytes()).find("m:properties/m:kafka.version", _POM_NS)
    if node is None or not (node.text or "").strip():
        raise EmbeddedBrokerError(f"{POM_RESOURCE} sets no kafka.version")
    return (node.text or "").strip()


def kafka_cache_dir() -> Path:
    """Where the jars go: $SANDWICH_KAFKA_CACHE, else $XDG_CACHE_HOME (or ~/.cache)/sandwich/kafka-V."""
    explicit = os.environ.get("SANDWICH_KAFKA_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sandwich" / f"kafka-{kafka_version()}"


def java_binary() -> str:
    """`$JAVA_HOME/bin/java` when JAVA_HOME is set (a wrong JAVA_HOME is an error, not a fallback)."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
        raise EmbeddedBrokerError(
            f"JAVA_HOME={java_home} has no bin/java: point JAVA_HOME at a JDK {MIN_JAVA}+ "
            f"or unset it to use the java on PATH"
        )
    found = shutil.which("java")
    if found is None:
        raise EmbeddedBrokerError(
            f"java not found: Apache Kafka needs Java {MIN_JAVA} or newer; install one "
            f"(e.g. `apt-get install openjdk-{MIN_JAVA}-jre-headless`) or set JAVA_HOME"
        )
    return found


def checked_java() -> str:
    """The java to run Kafka with, once `java -version` shows it new enough (Kafka 4's server: 17)."""
    java = java_binary()
    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EmbeddedBrokerError(f"could not run {java} -version: {exc}") from exc
    # "1.8.0_392" is Java 8, "17.0.15" is Java 17.
    match = re.search(r'version "(?:1\.)?(\d+)', done.stderr + done.stdout)
    if match is None:
        raise EmbeddedBrokerError(f"{java} -version printed no version: {(done.stderr or done.stdout)[:300]}")
    if (major := int(match.group(1))) < MIN_JAVA:
        raise EmbeddedBrokerError(
            f"Apache Kafka {kafka_version()} needs Java {MIN_JAVA} or newer, but {java} is Java {major}: "
            f"install a JDK {MIN_JAVA}+ (e.g. `apt-get install openjdk-{MIN_JAVA}-jre-headless`) "
            f"and put it first on PATH or set JAVA_HOME to it"
        )
    return java


def ensure_kafka_jars(cache_dir: Path | None = None, *, timeout: float = 900.0) -> Path:
    """The directory of Kafka's jars, downloaded through Maven the first time.

    A stamp holding the pom's hash is written last, so a download cut short (or done for another
    pom) is done again; a file lock makes a second process (pytest next to a running platform) wait
    for the first one's download instead of starting its own.
    """
    cache = (cache_dir or kafka_cache_dir()).resolve()
    pom = _pom_bytes()
    digest = hashlib.sha256(pom).hexdigest()
    lib, stamp = cache / "lib", cache / _STAMP

    def done() -> bool:
        return stamp.is_file() and stamp.read_text().strip() == digest

    if done():
        return lib
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if done():
            return lib
        mvn = shutil.which("mvn")
        if mvn is None:
            raise EmbeddedBrokerError(
                "mvn not found: the embedded Apache Kafka downloads its jars from Maven Central "
                "with Maven on first use; install it (e.g. `apt-get install maven`)"
            )
        stamp.unlink(missing_ok=True)
        shutil.rmtree(lib, ignore_errors=True)
        (cache / "pom.xml").write_bytes(pom)
        command = [mvn, "-q", "-B", "-f", str(cache / "pom.xml"), "dependency:copy-dependencies",
                   f"-DoutputDirectory={lib}", "-DincludeScope=runtime"]  # fmt: skip
        log.info("resolving Apache Kafka %s jars into %s", kafka_version(), lib)
        started = time.monotonic()
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise EmbeddedBrokerError(f"Maven did not fetch Kafka's jars within {timeout:.0f}s") from exc
        if result.returncode != 0 or not any(lib.glob("kafka_2.13-*.jar")):
            raise EmbeddedBrokerError(
                f"Maven could not fetch Apache Kafka's jars (exit {result.returncode}): "
                f"{(result.stdout + result.stderr)[-3000:]}"
            )
        stamp.write_text(digest + "\n")
        log.info("Kafka jars ready in %.1fs", time.monotonic() - started)
    return lib


def new_cluster_id() -> str:
    """A KRaft cluster id as Kafka makes them (`Uuid.randomUuid`: URL-safe base64, never a leading -)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text
