"""The Scotland figure: the whole Scottish list and 50,000 requests, from files to every
council's governed list.

180,000 synthetic people in one CSV per NHS board and 50,000 support requests in one CSV
per council (the demo's generators; files cached under `.state/bench/`, 0600 under 0700),
published through `publish_file`, the path of `accord publish` (validation, Avro, the
partner's own credentials; four organisations at a time), to a worker that is running and
has its partitions. The figure is the time from the first partner record to the last
share (broker timestamps).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accord.bench.measure import Offsets
from accord.core.credentials import private_dir
from accord.core.errors import InfrastructureError
from accord.core.kafka import ensure_topics
from accord.core.settings import Settings
from accord.core.topics import SHIELDING_LIST, SUPPORT_REQUEST, Topics
from accord.ingest.publish import publish_file
from accord.stack import processes

if TYPE_CHECKING:
    from accord.bench.run import Bench

SOURCE = (
    "CSV files through accord publish's path (publish_file), one file per organisation, "
    "four organisations at a time"
)
STRANGERS = 100  # requests about people not on the list (the demo's generator adds them)
CACHE_VERSION = 1
PUBLISHERS = 4  # organisations publishing at the same time


def request_share(people: int, requests: int) -> float:
    """The share of listed people who ask for help, so that requests come to `requests`
    (with the generator's requests from people not on the list)."""
    return min(1.0, max(0, requests - STRANGERS) / people) if people else 0.0


def files(
    settings: Settings, people: int, requests: int, seed: int, say: Any
) -> tuple[dict[str, Path], dict[str, Path], int]:
    """(board → list file, council → request file, requests), made once and cached."""
    folder = settings.state_dir / "bench" / f"scotland-v{CACHE_VERSION}-{people}-{requests}-{seed}"
    done = folder / "complete"
    if not done.exists():
        from accord.demo.run import write_board_files
        from accord.synthetic.people import generate_shielding_list
        from accord.synthetic.requests import REQUEST_COLUMNS, generate_requests, write_rows

        say(f"generating {people:,} people and about {requests:,} requests (cached for later runs)")
        private_dir(folder)
        rows = generate_shielding_list(people, seed=seed, bad_rows=0)
        write_board_files(rows, folder / "boards")
        asked, _ = generate_requests(
            rows, share=request_share(people, requests), strangers=STRANGERS, seed=seed
        )
        for org, council_rows in asked.items():
            write_rows(council_rows, REQUEST_COLUMNS, folder / "councils" / f"{org}.csv")
        done.write_text(str(sum(len(r) for r in asked.values())))
    boards = {p.stem: p for p in sorted((folder / "boards").glob("*.csv"))}
    councils = {p.stem: p for p in sorted((folder / "councils").glob("*.csv"))}
    return boards, councils, int(done.read_text())


def publish_all(
    scoped: Settings, waves: list[dict[str, Path]], task: Any, bench: Bench
) -> tuple[int, int]:
    """Each wave's files (the boards' lists, then the councils' requests), PUBLISHERS at a
    time, as organisations publish independently; (published, quarantined)."""
    published = quarantined = 0
    for wave, dataset in zip(waves, (SHIELDING_LIST, SUPPORT_REQUEST), strict=True):
        with ThreadPoolExecutor(PUBLISHERS) as pool:
            reports = pool.map(
                lambda item, dataset=dataset: publish_file(
                    scoped, item[0], dataset, item[1], lambda n: bench.progress.advance(task, n)
                ),
                wave.items(),
            )
            for report in reports:
                published += report.published
                quarantined += report.quarantined
    return published, quarantined


def measure(bench: Bench) -> dict[str, Any]:
    plan = bench.plan
    boards, councils, requests = files(
        bench.settings, plan.scotland_people, plan.scotland_requests, plan.seed, bench.say
    )
    scoped = bench.scoped("scotland", plan.partitions)
    topics = Topics(scoped)
    partner = [topics.partner(org, SHIELDING_LIST) for org in boards] + [
        topics.partner(org, SUPPORT_REQUEST) for org in councils
    ]
    try:
        with bench.workers(scoped, 1) as pool:
            ensure_topics(scoped, dict.fromkeys(partner), scoped.partner_topic_partitions)
            processes.wait_until_joined(scoped, 1, timeout_s=300)
            total = plan.scotland_people + requests
            task = bench.progress.add_task("scotland: publishing from files", total=total)
            started = time.monotonic()
            published, quarantined = publish_all(scoped, [boards, councils], task, bench)
            publish_s = time.monotonic() - started
            bench.caught_up(pool, "scotland: to every council's list")
            offsets = Offsets(scoped)
            try:
                from accord.bench.run import share_topics

                first = offsets.first_and_last_ms(partner)
                shares = share_topics(scoped)
                last = offsets.first_and_last_ms(shares)
                shared = offsets.records(shares)
            finally:
                offsets.close()
        if first is None or last is None:
            raise InfrastructureError("the Scotland run shared nothing")
        return {
            "people": plan.scotland_people,
            "requests": requests,
            "published": published,
            "quarantined": quarantined,
            "publish_seconds": round(publish_s, 1),
            "share_records": shared,
            "first_publish_to_last_share_s": round((last[1] - first[0]) / 1000, 1),
            "peak_rss_mb": pool.peaks_mb,
            "source": SOURCE,
        }
    finally:
        bench.release(scoped)


def describe(figure: dict[str, Any]) -> list[str]:
    return [
        f"Scotland: {figure['people']:,} people and {figure['requests']:,} requests "
        f"({figure['published']:,} published, {figure['quarantined']:,} quarantined; "
        f"publishing took {figure['publish_seconds']:.0f} s): first publish to the last share "
        f"{figure['first_publish_to_last_share_s']:.1f} s ({figure['share_records']:,} shared "
        f"records; worker peak RSS {', '.join(f'{mb:.0f}' for mb in figure['peak_rss_mb'])} MB)",
        f"  published as {figure['source']}",
    ]
