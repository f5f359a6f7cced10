"""make bench (batches): 1,000 invoices, each with its own 20 KiB attachment, sent through a
local SMTP sink by one SMail /BATCH run, by 1,000 separate SMail runs, and by a loop of 1,000
msmtp runs; in clear and with STARTTLS + AUTH. Then Microsoft Graph (the local fake, each
sendMail taking 100 ms as a real one takes a few hundred): 200 rows with 4 requests in flight
against one at a time. Prints Markdown tables; targets are reported, never asserted.

    python bench/batch_bench.py [--quick]      (--quick: 100 rows, Graph 40 rows)
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from bench import Measure, Sink, ensure_msmtp, measure  # noqa: E402

ATTACHMENT = 20 * 1024
PASSWORD = "Bench-Secret-1"
TARGETS = {"separate": 30.0, "msmtp": 10.0, "rss": 1.2, "graph": 3.0}


class TLSSink(Sink):
    """The discarding sink, with STARTTLS (RFC 3207) and AUTH PLAIN/LOGIN that accept anyone."""

    context: ssl.SSLContext
    upgrading: bytes | None = None  # what arrives before start_tls() has returned the new transport

    def data_received(self, data: bytes) -> None:
        if self.upgrading is not None:
            self.upgrading += data
            return
        if self.in_data or b"\r\n" not in self.buffer + data:
            super().data_received(data)
            return
        line, _sep, rest = (self.buffer + data).partition(b"\r\n")
        verb = line[:8].upper()
        if verb.startswith(b"EHLO"):
            tls = isinstance(self.transport.get_extra_info("sslcontext"), ssl.SSLContext)
            extensions = b"250-AUTH PLAIN LOGIN\r\n" if tls else b"250-STARTTLS\r\n"
            self.buffer = b""
            self.transport.write(b"250-sink\r\n" + extensions + b"250-8BITMIME\r\n250 SIZE 0\r\n")  # type: ignore[attr-defined]
        elif verb.startswith(b"STARTTLS"):
            self.buffer = b""
            self.transport.write(b"220 ready\r\n")  # type: ignore[attr-defined]
            self.upgrading = b""
            asyncio.ensure_future(self._upgrade())
            return
        elif verb.startswith(b"AUTH"):
            self.buffer = b""
            words = line.split()
            if len(words) == 2 and words[1].upper() == b"LOGIN":
                self.transport.write(b"334 VXNlcm5hbWU6\r\n")  # type: ignore[attr-defined]
                self.login = 2
            elif len(words) == 2:
                self.transport.write(b"334 \r\n")  # type: ignore[attr-defined]
                self.login = 1
            else:
                self.transport.write(b"235 2.7.0 ok\r\n")  # type: ignore[attr-defined]
        elif getattr(self, "login", 0):
            self.buffer = b""
            self.login -= 1
            self.transport.write(b"334 UGFzc3dvcmQ6\r\n" if self.login else b"235 2.7.0 ok\r\n")  # type: ignore[attr-defined]
        else:
            super().data_received(data)
            return
        if rest:
            self.data_received(rest)

    async def _upgrade(self) -> None:
        loop = asyncio.get_running_loop()
        self.transport = await loop.start_tls(self.transport, self, self.context, server_side=True)  # type: ignore[arg-type]
        early, self.upgrading = self.upgrading or b"", None
        if early:
            self.data_received(early)


def start_sink(context: ssl.SSLContext | None = None) -> int:
    loop = asyncio.new_event_loop()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    if context is not None:
        TLSSink.context = context
    loop.run_until_complete(loop.create_server(TLSSink if context else Sink, "127.0.0.1", port))
    threading.Thread(target=loop.run_forever, daemon=True).start()
    return port


@dataclass
class Setup:
    name: str
    port: int
    smail: list[str]
    msmtp: list[str]


def make_rows(folder: Path, count: int) -> Path:
    (folder / "pdf").mkdir(parents=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(["TO", "customer", "number", "ATTACH"])
    for n in range(1, count + 1):
        (folder / "pdf" / f"FAC-{n:05d}.pdf").write_bytes(os.urandom(ATTACHMENT))
        writer.writerow([f"client{n}@test.test", f"Client n°{n}", f"{n:05d}", f"pdf/FAC-{n:05d}.pdf"])
    rows = folder / "rows.csv"
    rows.write_text(buffer.getvalue(), encoding="utf-8")
    return rows


def smail(*args: str) -> list[str]:
    return [sys.executable, "-m", "smail", "/FROM_ADDR=bench@smail.test", "/QUIET", *args]


def batch_run(setup: Setup, rows: Path, results: Path) -> Measure:
    return measure(smail(*setup.smail, "/SUBJECT=Facture {{ number }} pour {{ customer }}",
                         "/BODY=Bonjour {{ customer }}, voici votre facture.", f"/BATCH={rows}",
                         f"/BATCH_RESULT={results}"))


def single_command(setup: Setup, rows: Path, n: int) -> list[str]:
    return smail(*setup.smail, f"/TO=client{n}@test.test", f"/SUBJECT=Facture {n:05d} pour Client n°{n}",
                 f"/BODY=Bonjour Client n°{n}, voici votre facture.", f"/ATTACH={rows.parent / 'pdf' / f'FAC-{n:05d}.pdf'}")


def median_of(results: list[Measure]) -> Measure:
    """Several runs of one measure: the median of each figure (peak RSS varies by about 1 MiB)."""
    return Measure(statistics.median(r.wall for r in results), statistics.median(r.cpu for r in results),
                   statistics.median(r.rss_mib for r in results))


def loop_of(commands: list[tuple[list[str], Path | None]]) -> Measure:
    """Commands one after the other: total wall and CPU time, the highest peak RSS."""
    started = time.perf_counter()
    results = [measure(command, stdin) for command, stdin in commands]
    return Measure(time.perf_counter() - started, sum(r.cpu for r in results), max(r.rss_mib for r in results))


def smtp_table(work: Path, count: int) -> list[str]:
    import trustme

    msmtp = ensure_msmtp()
    ca = trustme.CA()
    ca_file = work / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    plain_port, tls_port = start_sink(), start_sink(context)
    setups = [
        Setup("clear", plain_port, ["/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={plain_port}"],
              ["--auth=off", "--tls=off"]),
        Setup("STARTTLS + AUTH", tls_port,
              ["/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={tls_port}", "/SSL_VERSION=TLSV1_2", f"/CA_FILE={ca_file}",
               "/SMTP_USERNAME=bench@smail.test", f"/SMTP_PASSWORD={PASSWORD}"],
              ["--tls=on", "--tls-starttls=on", f"--tls-trust-file={ca_file}", "--auth=plain",
               "--user=bench@smail.test", f"--passwordeval=echo {PASSWORD}"]),
    ]
    rows = make_rows(work / "batch", count)
    emls = work / "eml"
    subprocess.run(smail("/SMTP_SERVER=127.0.0.1", "/SUBJECT=Facture {{ number }} pour {{ customer }}",
                         "/BODY=Bonjour {{ customer }}, voici votre facture.", f"/BATCH={rows}", "/DRY_RUN",
                         f"/SAVE_EML={emls}"), check=True)
    lines = [f"| {count:,} messages, 20 KiB each | wall | CPU | peak RSS | batch faster by |", "|---|---|---|---|---|"]
    notes = []
    for setup in setups:
        single = median_of([measure(single_command(setup, rows, 1)) for _ in range(3)])
        one_batch = median_of([batch_run(setup, rows, work / f"results-{setup.port}.csv") for _ in range(3)])
        separate = loop_of([(single_command(setup, rows, n), None) for n in range(1, count + 1)])
        figures = [("SMail /BATCH (one run)", one_batch), (f"{count:,} separate SMail runs", separate)]
        if msmtp:
            commands = [([msmtp, "--host=127.0.0.1", f"--port={setup.port}", *setup.msmtp, "--from=bench@smail.test",
                          f"client{n}@test.test"], emls / f"row-{n + 1:04d}.eml") for n in range(1, count + 1)]
            figures.append((f"{count:,} msmtp runs", loop_of(commands)))
        for label, figure in figures:
            ratio = "" if figure is one_batch else f"{figure.wall / one_batch.wall:.1f}×"
            lines.append(f"| {label} ({setup.name}) | {figure.wall:.2f} s | {figure.cpu:.2f} s | "
                         f"{figure.rss_mib:.1f} MiB | {ratio} |")
        lines.append(f"| one SMail send ({setup.name}) | {single.wall:.2f} s | {single.cpu:.2f} s | "
                     f"{single.rss_mib:.1f} MiB | |")
        speedup = separate.wall / one_batch.wall
        rss = one_batch.rss_mib / single.rss_mib
        text = (f"{setup.name}: {speedup:.1f}× faster than separate runs (target ≥ {TARGETS['separate']:.0f}×: "
                f"{'met' if speedup >= TARGETS['separate'] else 'missed'})")
        if msmtp:
            versus = figures[2][1].wall / one_batch.wall
            text += (f", {versus:.1f}× faster than the msmtp loop (target ≥ {TARGETS['msmtp']:.0f}×: "
                     f"{'met' if versus >= TARGETS['msmtp'] else 'missed'})")
        text += (f", peak RSS {rss:.2f}× a single send's (target ≤ {TARGETS['rss']}×: "
                 f"{'met' if rss <= TARGETS['rss'] else 'missed'}).")
        notes.append(text)
    if not msmtp:
        notes.append("msmtp is not installed: its column is missing.")
    return [*lines, "", *notes]


def graph_table(work: Path, count: int, latency: float = 0.1) -> list[str]:
    """In-process: the batch itself with `workers` 4 and 1, against the fake with a fixed service time."""
    import trustme

    from smail import batch, reader
    from smail.config import validate
    from smail.output import Console
    from tests.fakes.microsoft import App, FakeMicrosoft

    ca = trustme.CA()
    ca_file = work / "graph-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    fake = FakeMicrosoft(context)
    fake.start()
    fake.register(App("bench-app", secret=PASSWORD, mailboxes={"bench@smail.test"}))
    rows = make_rows(work / "graph", count)
    argv = ["/MODE=GRAPH", f"/O365_TENANT_ID={fake.tenant}", "/O365_APP_ID=bench-app", f"/O365_SECRET={PASSWORD}",
            "/GRAPH_SENDER=bench@smail.test", f"/O365_AUTHORITY_HOST={fake.authority}",
            f"/GRAPH_ENDPOINT={fake.graph}", f"/CA_FILE={ca_file}", "/SUBJECT=Facture {{ number }}",
            "/BODY=Bonjour {{ customer }}", f"/BATCH={rows}"]
    environ = {"NO_PROXY": "127.0.0.1,localhost"}
    times: dict[int, float] = {}
    try:
        for workers in (4, 1):
            for _ in range(count):
                fake.stall(r"/sendMail$", latency)
            raw = reader.parse(argv, environ)
            config = validate(raw)
            started = time.perf_counter()
            outcome = batch.run(config, Console(io.StringIO(), io.StringIO()), workers=workers)
            times[workers] = time.perf_counter() - started
            if outcome.exit_code != 0:
                raise SystemExit(f"Graph batch failed: {outcome.text}")
    finally:
        fake.stop()
    ratio = times[1] / times[4]
    return [f"| Graph, {count} rows, {latency * 1000:.0f} ms per sendMail | wall | messages/s |", "|---|---|---|",
            f"| 4 requests in flight | {times[4]:.2f} s | {count / times[4]:.1f} |",
            f"| 1 at a time | {times[1]:.2f} s | {count / times[1]:.1f} |", "",
            f"4 in flight: {ratio:.1f}× the throughput of one at a time (target ≥ {TARGETS['graph']:.0f}×: "
            f"{'met' if ratio >= TARGETS['graph'] else 'missed'})."]


def main() -> int:
    quick = "--quick" in sys.argv
    with tempfile.TemporaryDirectory(prefix="smail-batch-bench-") as folder:
        work = Path(folder)
        print("## Batches through a local SMTP sink\n")
        print("\n".join(smtp_table(work, 100 if quick else 1000)))
        print("\n## Batches through Microsoft Graph (local fake)\n")
        print("\n".join(graph_table(work, 40 if quick else 200)))
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
