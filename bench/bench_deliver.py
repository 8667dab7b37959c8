"""Delivery throughput: feedletter's outbox + SMTP mailer against a raw smtplib loop, same sink, same run.

A counting aiosmtpd sink runs in its own process (../shared/bench/smtpsink.py when present, else
feedletter.mailsink). Both contenders run in their own subprocess, so each one's peak memory is its own:

- raw: the very messages feedletter would send, built beforehand into a file, then sent with
  ``smtplib.SMTP.sendmail`` over one connection (no store, no records);
- feedletter: ``deliver_issue`` over a SQLite store of N subscribers, exactly once per row.

    python bench/bench_deliver.py [--subscribers 10000] [--html-kb 40]

Targets: feedletter ≥ 70 % of the raw rate; peak RSS < 300 MB. Prints one JSON line as well.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import resource
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED_SINK = ROOT.parent / "shared" / "bench" / "smtpsink.py"
SECRET = "bench-secret-0123456789abcdef0123"
SENDER = "Bench Weekly <news@bench.example>"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _digest(kb: int) -> tuple[str, str]:
    story = ("<tr><td><h2><a href=\"https://blog.example/post/{i}\">Story {i}: what the council decided</a></h2>"
             "<p>Riverside Clinic · 3 May</p><p>The council met on Tuesday and agreed the new plan; residents "
             "asked about costs, timing and the café on Mill Lane. {i}</p></td></tr>\n")
    html, i = ["<html><body><p>Hello %%NAME%%</p><table>"], 0
    while sum(map(len, html)) < kb * 1024:
        html.append(story.format(i=i))
        i += 1
    html.append('</table><p><a href="%%UNSUBSCRIBE_URL%%">Unsubscribe</a></p></body></html>')
    text = "\n\n".join(f"Story {n}: what the council decided\nhttps://blog.example/post/{n}" for n in range(i))
    return "".join(html), text + "\n\nUnsubscribe: %%UNSUBSCRIBE_URL%%\n"


def _setup(workdir: Path, people: int, kb: int) -> tuple[object, object, object]:
    from feedletter.config import parse_config
    from feedletter.deliver import IssueContent
    from feedletter.deliver import outbox as outbox_queue
    from feedletter.schema import issues, subscribers
    from feedletter.store import Store, now

    config, problems = parse_config(f"store: sqlite:///{workdir}/bench.db\nsite: {{base_url: 'https://bench.example'}}\n"
                                    f"newsletters:\n  - {{name: bench, title: Bench, from: '{SENDER}'}}\n")
    assert config is not None, problems
    store = Store.open(config.store_url())
    html, text = _digest(kb)
    with store.begin() as conn:
        if not conn.execute(issues.select().limit(1)).first():
            stamp = now()
            conn.execute(subscribers.insert(), [
                {"newsletter": "bench", "email": f"reader{i}@bench.example", "name": f"Reader {i}",
                 "status": "active", "created": stamp, "confirmed": stamp} for i in range(people)])
            conn.execute(issues.insert().values(newsletter="bench", number=1, issued=stamp, subject="Bench issue",
                                                preheader="", html=html, text=text, mjml="", data="{}"))
    outbox_queue.queue(store, 1, "bench", "bench.example")
    issue = IssueContent(1, config.newsletter("bench"), "Bench issue", html, text)
    return config, store, issue


def run_raw(workdir: Path, people: int, kb: int, port: int) -> dict[str, float]:
    """Build every message first (not timed), then time a plain sendmail loop."""
    from feedletter.deliver import unsubscribe_url
    from feedletter.deliver.message import IssueMessage
    from feedletter.models import Subscriber
    from feedletter.schema import outbox

    config, store, issue = _setup(workdir, people, kb)
    template = IssueMessage(sender=SENDER, subject="Bench issue", html=issue.html, text=issue.text,  # type: ignore[attr-defined]
                            list_id="bench")
    blob, spans = workdir / "raw.bin", []
    with store.begin() as conn, blob.open("wb") as out:  # type: ignore[attr-defined]
        for row in conn.execute(outbox.select().order_by(outbox.c.id)).mappings():
            msg = template.for_subscriber(Subscriber(row["subscriber_id"], "bench", row["email"], ""),
                                          message_id=row["message_id"],
                                          unsubscribe_url=unsubscribe_url(config, row["subscriber_id"]))  # type: ignore[arg-type]
            spans.append((out.tell(), len(msg.data), row["email"]))
            out.write(msg.data)
    with blob.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        start = time.perf_counter()
        smtp = smtplib.SMTP("127.0.0.1", port)
        for offset, size, email in spans:
            smtp.sendmail("news@bench.example", [email], data[offset:offset + size])
        smtp.quit()
        seconds = time.perf_counter() - start
    return {"messages": len(spans), "seconds": seconds, "rss_mb": _peak_mb()}


def run_feedletter(workdir: Path, people: int, kb: int, port: int) -> dict[str, float]:
    from feedletter.deliver import deliver_issue
    from feedletter.deliver.providers.smtp import SmtpMailer, SmtpSettings

    config, store, issue = _setup(workdir, people, kb)
    start = time.perf_counter()
    counts = deliver_issue(config, store, issue, SmtpMailer(SmtpSettings.from_url(f"smtp://127.0.0.1:{port}")))  # type: ignore[arg-type]
    seconds = time.perf_counter() - start
    return {"messages": counts.sent, "seconds": seconds, "rss_mb": _peak_mb()}


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _start_sink(port: int) -> subprocess.Popen[str]:
    if SHARED_SINK.exists():
        cmd = [sys.executable, str(SHARED_SINK), "--port", str(port)]
    else:
        cmd = [sys.executable, "-c", "import sys,signal; sys.path.insert(0, sys.argv[2]);"
               "from feedletter.mailsink import MailSink; s = MailSink(port=int(sys.argv[1])).start();"
               "print('ready', flush=True); signal.sigwait({signal.SIGTERM}); s.stop()", str(port), str(ROOT)]
    sink = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert sink.stdout is not None
    sink.stdout.readline()
    return sink


def _child(kind: str, workdir: Path, people: int, kb: int, port: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", kind, "--workdir", str(workdir),
                          "--subscribers", str(people), "--html-kb", str(kb), "--port", str(port)],
                         check=True, capture_output=True, text=True, env={**os.environ, "FEEDLETTER_SECRET": SECRET})
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--html-kb", type=int, default=40)
    parser.add_argument("--child", choices=["raw", "feedletter"])
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--port", type=int)
    args = parser.parse_args(argv)
    if args.child:
        run = run_raw if args.child == "raw" else run_feedletter
        print(json.dumps(run(args.workdir, args.subscribers, args.html_kb, args.port)))
        return 0
    port = _free_port()
    sink = _start_sink(port)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-deliver-") as tmp:
            raw = _child("raw", Path(tmp) / "raw", args.subscribers, args.html_kb, port)
            ours = _child("feedletter", Path(tmp) / "ours", args.subscribers, args.html_kb, port)
    finally:
        sink.send_signal(signal.SIGTERM)
        sink.wait(timeout=30)
    raw_rate, our_rate = raw["messages"] / raw["seconds"], ours["messages"] / ours["seconds"]
    ratio = our_rate / raw_rate
    print(f"deliver: {args.subscribers} subscribers, {args.html_kb} KB HTML digest, loopback aiosmtpd sink")
    print(f"  raw smtplib loop   {raw_rate:8.0f} msg/s  ({raw['seconds']:.1f} s)")
    print(f"  feedletter outbox  {our_rate:8.0f} msg/s  ({ours['seconds']:.1f} s)  = {ratio:.0%} of raw "
          f"(target ≥ 70 %)  {'OK' if ratio >= 0.7 else 'BELOW TARGET'}")
    print(f"  feedletter peak RSS {ours['rss_mb']:.0f} MB (target < 300 MB)  "
          f"{'OK' if ours['rss_mb'] < 300 else 'OVER TARGET'}")
    print(json.dumps({"bench": "deliver", "subscribers": args.subscribers, "raw_per_s": round(raw_rate, 1),
                      "feedletter_per_s": round(our_rate, 1), "ratio": round(ratio, 3),
                      "peak_rss_mb": round(ours["rss_mb"], 1), "sent": ours["messages"]}))
    return 0 if ours["messages"] == args.subscribers else 1


if __name__ == "__main__":
    sys.exit(main())
