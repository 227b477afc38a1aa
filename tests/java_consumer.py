"""The Java consumer example (examples/java/) for the tests: built once per session with
Maven online (its first run fetches kafka-clients, Avro and the plugins into ~/.m2), into
a temporary folder, and run as `java -jar` with the summary of each run parsed."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POM = ROOT / "examples" / "java" / "pom.xml"
SUMMARY = re.compile(r"workerfile-java-consumer: read (\d+) records of (\S+): (\d+) printed, (\d+) already printed, "
                     r"(\d+) unreadable(?:, (\d+) tombstones)?")


@dataclass
class Run:
    """One run of the consumer: its status, its lines (stdout, UTF-8) and stderr."""

    returncode: int
    lines: list[str]
    stderr: str

    def counts(self) -> dict[str, int]:
        """The summary line's counts: read, printed, repeated, unreadable (and tombstones for files)."""
        found = SUMMARY.findall(self.stderr)
        assert len(found) == 1, self.stderr[-3000:]
        read, _, printed, repeated, unreadable, tombstones = found[0]
        counts = {"read": int(read), "printed": int(printed), "repeated": int(repeated),
                  "unreadable": int(unreadable)}
        if tombstones:
            counts["tombstones"] = int(tombstones)
        return counts


@dataclass
class JavaConsumer:
    jar: Path
    build_seconds: float

    def run(self, *args: str, input: bytes | None = None, timeout: float = 300) -> Run:
        java = shutil.which("java")
        assert java, "a JDK 17+ is needed on the PATH"
        done = subprocess.run([java, "-jar", str(self.jar), *args], input=input, capture_output=True,
                              timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)
        text = done.stdout.decode("utf-8")
        assert text == "" or text.endswith("\n"), text[-200:]
        lines = text.split("\n")[:-1]  # not splitlines(): a line may hold U+2028 and other line breaks of Unicode
        return Run(done.returncode, lines, done.stderr.decode("utf-8", "replace"))


def build(into: Path) -> JavaConsumer:
    """`mvn -q package` of examples/java (the schema classes, then the consumer's jar) into `into`."""
    mvn = shutil.which("mvn")
    assert mvn, "Maven (mvn) is needed on the PATH, as for the local Kafka broker"
    started = time.monotonic()
    done = subprocess.run([mvn, "-B", "-q", "-Dstyle.color=never", "-f", str(POM), f"-Dbuild.dir={into / 'schemas'}",
                           f"-Dconsumer.build.dir={into / 'consumer'}", "package"],
                          capture_output=True, text=True, timeout=1200, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    jar = into / "consumer" / "workerfile-java-consumer.jar"
    assert jar.is_file(), sorted(p.name for p in (into / "consumer").iterdir())
    return JavaConsumer(jar, time.monotonic() - started)
