"""make bench: SMail's speed and memory, measured side by side with msmtp and a plain
smtplib + EmailMessage script in the same run, and the frozen binary's size and start-up
beside a minimal one-file PyInstaller program. Prints Markdown tables; targets are reported,
never asserted.

    python bench/bench.py [--quick]      (--quick: 0 B and 1 MiB only, no frozen build)
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZES = {"0 B": 0, "1 MiB": 1 << 20, "10 MiB": 10 << 20, "100 MiB": 100 << 20}
SMTPLIB_SCRIPT = """
import smtplib, sys
from email.message import EmailMessage
from pathlib import Path
port, attachment = int(sys.argv[1]), Path(sys.argv[2])
message = EmailMessage()
message["From"], message["To"], message["Subject"] = "bench@smail.test", "sink@smail.test", "bench"
message.set_content("Benchmark body.")
message.add_attachment(attachment.read_bytes(), maintype="application", subtype="octet-stream",
                       filename=attachment.name)
with smtplib.SMTP("127.0.0.1", port) as client:
    client.send_message(message)
"""


class Sink(asyncio.Protocol):
    """A minimal SMTP server that discards the message data as fast as it arrives."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""
        self.in_data = False
        transport.write(b"220 sink ready\r\n")  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if self.in_data:
            tail = self.buffer[-4:] + data
            self.buffer = tail[-5:]
            if b"\r\n.\r\n" in tail:
                self.in_data = False
                self.buffer = b""
                self.transport.write(b"250 2.0.0 Ok: queued as BENCH\r\n")  # type: ignore[attr-defined]
            return
        self.buffer += data
        while b"\r\n" in self.buffer and not self.in_data:
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            verb = line[:4].upper()
            if verb == b"EHLO":
                reply = b"250-sink\r\n250-8BITMIME\r\n250 SIZE 0\r\n"
            elif verb == b"DATA":
                self.in_data, reply = True, b"354 go\r\n"
                rest, self.buffer = self.buffer, b""
                self.transport.write(reply)  # type: ignore[attr-defined]
                if rest:
                    self.data_received(rest)
                return
            elif verb == b"QUIT":
                self.transport.write(b"221 bye\r\n")  # type: ignore[attr-defined]
                self.transport.close()
                return
            else:
                reply = b"250 ok\r\n"
            self.transport.write(reply)  # type: ignore[attr-defined]


def start_sink() -> int:
    loop = asyncio.new_event_loop()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = loop.run_until_complete(loop.create_server(Sink, "127.0.0.1", port))
    threading.Thread(target=loop.run_forever, daemon=True).start()
    del server
    return int(port)


@dataclass
class Measure:
    wall: float
    cpu: float
    rss_mib: float


GNU_TIME = "/usr/bin/time" if sys.platform.startswith("linux") and Path("/usr/bin/time").exists() else None


def measure(command: list[str], stdin: Path | None = None) -> Measure:
    """Wall, CPU and peak RSS of one command. A child's peak RSS counts the memory of the
    process it was forked from (this bench holds a few dozen MiB): GNU time, small itself,
    forks the command and reports the command's own peak."""
    if GNU_TIME is None:
        return measure_with_wait4(command, stdin)
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        started = time.perf_counter()
        with (stdin.open("rb") if stdin else open(os.devnull, "rb")) as feed:
            process = subprocess.Popen([GNU_TIME, "-f", "%M", "-o", report.name, *command], stdin=feed,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            _pid, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            error = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise SystemExit(f"{command[0]} failed: {error}")
        peak_kib = int(report.read().split()[-1])
    return Measure(wall, usage.ru_utime + usage.ru_stime, peak_kib / 1024)


def measure_with_wait4(command: list[str], stdin: Path | None = None) -> Measure:
    """Wall time, CPU time and peak RSS of one child process (wait4 rusage)."""
    started = time.perf_counter()
    with (stdin.open("rb") if stdin else open(os.devnull, "rb")) as feed:
        process = subprocess.Popen(command, stdin=feed, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _pid, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{command[0]} failed: {process.stderr.read().decode(errors='replace') if process.stderr else ''}")
    return Measure(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def best_of(runs: int, command: list[str], stdin: Path | None = None) -> Measure:
    results = [measure(command, stdin) for _ in range(runs)]
    return Measure(min(r.wall for r in results), min(r.cpu for r in results),
                   statistics.median(r.rss_mib for r in results))


def ensure_msmtp() -> str | None:
    if shutil.which("msmtp"):
        return shutil.which("msmtp")
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL, check=False)
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "msmtp"], env=env,
                       stdout=subprocess.DEVNULL, check=False)
    return shutil.which("msmtp")


def transfer_table(work: Path, port: int, sizes: dict[str, int]) -> list[str]:
    msmtp = ensure_msmtp()
    rows = ["| attachment | SMail wall / CPU / peak RSS | msmtp wall / CPU / peak RSS | smtplib wall / CPU / peak RSS "
            "| SMail ÷ msmtp (wall) | SMail ÷ smtplib (wall) |", "|---|---|---|---|---|---|"]
    figures: dict[str, Measure] = {}
    plains: dict[str, Measure] = {}
    for label, size in sizes.items():
        attachment = work / f"attachment-{size}.bin"
        with attachment.open("wb") as stream:
            remaining = size
            while remaining:
                block = os.urandom(min(remaining, 1 << 20))
                stream.write(block)
                remaining -= len(block)
        eml = work / f"message-{size}.eml"
        smail = [sys.executable, "-m", "smail", "/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={port}",
                 "/FROM_ADDR=bench@smail.test", "/TO=sink@smail.test", "/SUBJECT=bench", "/BODY=Benchmark body.",
                 f"/ATTACH={attachment}", "/QUIET"]
        subprocess.run([*smail, "/DRY_RUN", f"/SAVE_EML={eml}"], check=True)
        runs = 3 if size <= 10 << 20 else 2
        mine = best_of(runs, smail)
        figures[label] = mine
        plain = best_of(runs, [sys.executable, "-c", SMTPLIB_SCRIPT, str(port), str(attachment)])
        plains[label] = plain
        if msmtp:
            other = best_of(runs, [msmtp, "--host=127.0.0.1", f"--port={port}", "--auth=off", "--tls=off",
                                   "--from=bench@smail.test", "sink@smail.test"], stdin=eml)
            other_text = f"{other.wall:.2f} s / {other.cpu:.2f} s / {other.rss_mib:.1f} MiB"
            ratio = f"{mine.wall / other.wall:.2f}×"
        else:
            other_text, ratio = "msmtp not installed", "-"
        rows.append(f"| {label} | {mine.wall:.2f} s / {mine.cpu:.2f} s / {mine.rss_mib:.1f} MiB | {other_text} | "
                    f"{plain.wall:.2f} s / {plain.cpu:.2f} s / {plain.rss_mib:.1f} MiB | {ratio} | "
                    f"{mine.wall / plain.wall:.2f}× |")
        attachment.unlink()
        eml.unlink()
    small = figures["0 B"].wall / plains["0 B"].wall
    rows.append("")
    rows.append(f"Small send: SMail {small:.2f}× the smtplib + EmailMessage script (target ≤ 1.5×: "
                f"{'met' if small <= 1.5 else 'missed'}).")
    if "100 MiB" in figures:
        zero, big = figures["0 B"].rss_mib, figures["100 MiB"].rss_mib
        rows.append("")
        rows.append(f"Targets: peak RSS at 100 MiB {big:.1f} MiB (target ≤ 45 MiB: {'met' if big <= 45 else 'missed'}); "
                    f"{100 * (big / zero - 1):+.1f} % against the 0-byte run (target within 10 %: "
                    f"{'met' if big <= zero * 1.10 else 'missed'}).")
    return rows


def interpreter_table() -> list[str]:
    """`python -m smail /VERSION` against `python -c "import ssl, smtplib"`, the same interpreter."""
    def median(command: list[str]) -> float:
        times = []
        for _ in range(15):
            started = time.perf_counter()
            subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
            times.append(time.perf_counter() - started)
        return statistics.median(times)
    version = median([sys.executable, "-m", "smail", "/VERSION"])
    floor = median([sys.executable, "-c", "import ssl, smtplib"])
    ratio = version / floor
    return ["| command | median of 15 |", "|---|---|",
            f"| `python -m smail /VERSION` | {version * 1000:.0f} ms |",
            f"| `python -c \"import ssl, smtplib\"` | {floor * 1000:.0f} ms |",
            "", f"/VERSION ratio {ratio:.2f}× (target ≤ 1.3×: {'met' if ratio <= 1.3 else 'missed'})."]


def startup_table(work: Path) -> list[str]:
    """Frozen SMail against a one-file PyInstaller build of a script importing smtplib, email, ssl."""
    exe = ROOT / "dist" / "SMail"
    if not exe.is_file():
        subprocess.run([sys.executable, str(ROOT / "ci" / "build_exe.py"), "native"], check=True)
    floor_script = work / "floor.py"
    floor_script.write_text("import email, smtplib, ssl, sys\nprint('floor', sys.argv[1:])\n")
    subprocess.run([sys.executable, "-m", "PyInstaller", "--onefile", "--noconfirm", "--log-level=WARN",
                    "--distpath", str(work / "dist"), "--workpath", str(work / "build"), "--specpath", str(work),
                    "--strip", str(floor_script)], check=True)
    floor = work / "dist" / "floor"

    def startup(binary: Path) -> float:
        times = []
        for _ in range(15):
            started = time.perf_counter()
            subprocess.run([str(binary), "/VERSION"], stdout=subprocess.DEVNULL, check=True)
            times.append(time.perf_counter() - started)
        return statistics.median(times)
    smail_time, floor_time = startup(exe), startup(floor)
    smail_size, floor_size = exe.stat().st_size / 1e6, floor.stat().st_size / 1e6
    ratio = smail_time / floor_time
    return ["| binary | size | /VERSION start-up (median of 15) |", "|---|---|---|",
            f"| SMail (one file) | {smail_size:.1f} MB | {smail_time * 1000:.0f} ms |",
            f"| smtplib + email + ssl floor (one file) | {floor_size:.1f} MB | {floor_time * 1000:.0f} ms |",
            "", f"Start-up ratio {ratio:.2f}× (target ≤ 1.15×: {'met' if ratio <= 1.15 else 'missed'})."]


def unpacked_per_start(exe: Path) -> tuple[int, int, list[tuple[int, str]]]:
    """Files and bytes a one-file executable writes out at every start: its binaries, data files
    and symlinks (PyInstaller's 'b', 'x' and 'n' entries); modules stay inside the exe."""
    sys.path.insert(0, str(ROOT / "build"))
    from pyinstaller_common import unpacked_entries

    entries = unpacked_entries(exe)
    return len(entries), sum(size for size, _name in entries), sorted(entries, reverse=True)


def frozen_send_table(work: Path, port: int) -> list[str]:
    """A small send by the one-file binary against the installed package's, side by side."""
    exe = ROOT / "dist" / "SMail"
    if not exe.is_file():
        subprocess.run([sys.executable, str(ROOT / "ci" / "build_exe.py"), "native"], check=True)
    options = ["/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={port}", "/FROM_ADDR=bench@smail.test", "/TO=sink@smail.test",
               "/SUBJECT=bench", "/BODY=Benchmark body.", "/QUIET"]

    def median(command: list[str]) -> float:
        times = []
        for _ in range(15):
            started = time.perf_counter()
            subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
            times.append(time.perf_counter() - started)
        return statistics.median(times)
    installed, frozen = median([sys.executable, "-m", "smail", *options]), median([str(exe), *options])
    files, size, largest = unpacked_per_start(exe)
    ratio = frozen / installed
    loaded = [f"`{name}` {entry_size / 1e6:.1f} MB" for entry_size, name in largest[:4]]
    return ["| small send (no attachment), median of 15 | wall |", "|---|---|",
            f"| installed package (`python -m smail`) | {installed * 1000:.0f} ms |",
            f"| one-file binary (`dist/SMail`) | {frozen * 1000:.0f} ms |", "",
            f"One-file ÷ installed: {ratio:.2f}× (target ≤ 1.3×: {'met' if ratio <= 1.3 else 'missed'}). "
            f"Each start of the one-file binary unpacks {files} files, {size / 1e6:.1f} MB; the largest: "
            f"{', '.join(loaded)}."]


def main() -> int:
    quick = "--quick" in sys.argv
    resource.setrlimit(resource.RLIMIT_NOFILE, resource.getrlimit(resource.RLIMIT_NOFILE))
    with tempfile.TemporaryDirectory(prefix="smail-bench-") as folder:
        work = Path(folder)
        port = start_sink()
        sizes = {k: v for k, v in SIZES.items() if not quick or v <= 1 << 20}
        print("## Sending through a local SMTP sink\n")
        print("\n".join(transfer_table(work, port, sizes)))
        print("\n## Start-up, installed\n")
        print("\n".join(interpreter_table()))
        if not quick:
            print("\n## Frozen binary\n")
            print("\n".join(startup_table(work)))
            print("\n## A small send, one-file binary against the installed package\n")
            print("\n".join(frozen_send_table(work, port)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
