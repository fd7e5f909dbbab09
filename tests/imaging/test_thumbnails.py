"""core.thumbnails.ThumbnailService: off the loop, in parallel, bounded, cached, cleaned up."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import pacsbrowser.core.thumbnails as thumbnails_module
from pacsbrowser.core import executor
from pacsbrowser.core.imaging import Kind, render
from pacsbrowser.core.thumbcache import ThumbnailCache
from pacsbrowser.core.thumbnails import ThumbnailRequest, ThumbnailService

from .samples import make_series

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pydicom")

MIXED = ["ct_two_windows", "mono1", "rgb", "ybr_full_422", "palette16", "multiframe_grey", "rle_ct",
         "jpeg_baseline_rgb", "jpegls_lossless", "j2k_lossless_ct", "deflate_ct", "sr", "pdf",
         "truncated_pixels", "not_dicom"]


@pytest.fixture(scope="session")
def large_series(_session_dir) -> list[Path]:
    """300 small CT slices: a study too big to hold decoded."""
    return make_series(_session_dir / "series300", 300, side=128)


async def collect(service: ThumbnailService, items, size=64):
    out = {}
    async for path, thumbnail in service.thumbnails(items, size):
        out[Path(path)] = thumbnail
    return out


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_same_thumbnails_as_render_whatever_runs_them(samples, processes):
    paths = [samples[name].path for name in MIXED]

    async def main():
        async with ThumbnailService(processes=processes, workers=2) as service:
            got = await collect(service, paths)
            return got, service.stats

    got, stats = asyncio.run(main())
    assert set(got) == set(paths)
    for path in paths:
        expected = render(path, 64)
        assert got[path].kind == expected.kind and got[path].label == expected.label, path.name
        np.testing.assert_array_equal(got[path].pixels, expected.pixels, err_msg=path.name)
        assert not got[path].pixels.flags.writeable
    assert stats.submitted == len(paths) and stats.rendered == len(paths) and stats.cache_hits == 0
    assert stats.placeholders == 4
    assert stats.in_flight == 0


# one file per SOP Instance UID, as in an archive (the lossless samples share their source's UID)
STUDY = ["ct_two_windows", "mono1", "rgb", "ybr_full_422", "palette16", "multiframe_grey",
         "jpeg_baseline_rgb", "jpeg_extended_12bit", "sr", "pdf", "not_dicom"]


def test_a_study_opens_from_the_cache_the_second_time(samples, workdir):
    folder = workdir / "study"
    folder.mkdir()
    paths = [Path(shutil.copy(samples[name].path, folder / f"{name}.dcm")) for name in STUDY]
    cache = ThumbnailCache(workdir / "archive" / "thumbnails")

    async def open_study(processes: bool):
        async with ThumbnailService(cache, processes=processes, workers=2) as service:
            got = await collect(service, paths)
            return got, service.stats

    first, stats1 = asyncio.run(open_study(False))
    assert (stats1.rendered, stats1.cache_hits) == (len(paths), 0)
    second, stats2 = asyncio.run(open_study(True))  # another process reads what threads wrote
    assert (stats2.rendered, stats2.cache_hits) == (1, len(paths) - 1)  # "not_dicom" has no UID
    for path in paths:
        np.testing.assert_array_equal(second[path].pixels, first[path].pixels)
        assert second[path].label == first[path].label
    # the archive replaces one instance: only that one is rendered again
    replaced = paths[0]
    tmp = replaced.with_suffix(".incoming")
    shutil.copyfile(samples["mono2_twin"].path, tmp)
    os.replace(tmp, replaced)

    async def reopen():
        async with ThumbnailService(cache, processes=False, workers=2) as service:
            requests = [ThumbnailRequest(p, "2.25.4242.1" if p == replaced else None) for p in paths]
            got = await collect(service, requests)
            return got, service.stats

    third, stats3 = asyncio.run(reopen())
    assert stats3.rendered == 2 and stats3.cache_hits == len(paths) - 2  # the replaced one, not_dicom
    np.testing.assert_array_equal(third[replaced].pixels, render(samples["mono2_twin"].path, 64).pixels)


def test_in_flight_is_bounded_and_files_are_taken_lazily(large_series):
    pulled = 0
    worst = 0

    def items():
        nonlocal pulled
        for path in large_series:
            pulled += 1
            yield path

    async def main():
        nonlocal worst
        received = 0
        async with ThumbnailService(processes=False, workers=2, max_in_flight=6) as service:
            async for _, thumbnail in service.thumbnails(items(), 32):
                received += 1
                worst = max(worst, pulled - received)
                assert not thumbnail.is_placeholder
                await asyncio.sleep(0)  # a consumer that lets the loop run
            return received, service.stats

    received, stats = asyncio.run(main())
    assert received == len(large_series) == 300
    assert worst <= 6 and stats.peak_in_flight <= 6
    assert stats.peak_in_flight == 6  # and the bound is used


def test_memory_stays_bounded_on_a_large_series(large_series, monkeypatch):
    """tracemalloc sees numpy's buffers: the peak does not grow with the number of files, and
    no more frames are decoded at once than there are workers."""
    running = 0
    most_running = 0
    lock = threading.Lock()
    real_render = thumbnails_module.render

    def counting_render(*args, **kwargs):
        nonlocal running, most_running
        with lock:
            running += 1
            most_running = max(most_running, running)
        try:
            return real_render(*args, **kwargs)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(thumbnails_module, "render", counting_render)

    async def stream(paths):
        count = 0
        async with ThumbnailService(processes=False, workers=2, max_in_flight=8) as service:
            async for _, thumbnail in service.thumbnails(paths, 64):
                count += thumbnail.pixels.size > 0
        return count

    frame_bytes = 128 * 128 * 8  # one frame as float64 modality values
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        assert asyncio.run(stream(large_series[:30])) == 30
        peak_30 = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        assert asyncio.run(stream(large_series)) == 300
        peak_300 = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    print(f"\nmemory: traced peak {peak_30 / 1e6:.2f} MB for 30 files, {peak_300 / 1e6:.2f} MB for 300 "
          f"(all 300 frames decoded at once would be {300 * frame_bytes / 1e6:.1f} MB); "
          f"renders at once: at most {most_running}")
    assert most_running <= 2
    assert peak_300 < 1.5 * peak_30 + 2e6
    assert peak_300 < 300 * frame_bytes / 4


def test_leaving_early_cancels_the_rest(large_series):
    async def main():
        async with ThumbnailService(processes=True, workers=2, max_in_flight=4) as service:
            got = []
            async with contextlib.aclosing(service.thumbnails(large_series, 32)) as stream:
                async for item in stream:
                    got.append(item)
                    if len(got) == 3:
                        break
            return got, service.stats

    got, stats = asyncio.run(main())
    assert len(got) == 3
    assert stats.submitted <= 3 + 4 and stats.in_flight == 0


def test_a_worker_that_dies_is_replaced_and_no_file_is_lost(large_series):
    paths = large_series[:40]

    async def main():
        got = []
        async with ThumbnailService(processes=True, workers=2, max_in_flight=8) as service:
            async for path, thumbnail in service.thumbnails(paths, 32):
                got.append((path, thumbnail))
                if len(got) == 2:  # kill a worker while others are in flight
                    victim = next(iter(service._pool._processes.values()))
                    os.kill(victim.pid, signal.SIGKILL)
            return got, service.stats

    got, stats = asyncio.run(main())
    assert sorted(p for p, _ in got) == sorted(paths)
    assert stats.worker_restarts >= 1
    assert all(not t.is_placeholder for _, t in got)


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_a_missing_file_is_a_placeholder(workdir, samples, processes):
    cache = ThumbnailCache(workdir / "cache")

    async def main():
        async with ThumbnailService(cache if processes else None, processes=processes) as service:
            return await service.thumbnail(workdir / "gone.dcm", 48), await service.thumbnail(samples["rgb"].path)

    gone, rgb = asyncio.run(main())
    assert gone.kind is Kind.MISSING and gone.label == "Missing file" and gone.pixels.shape == (48, 48)
    assert rgb.is_color and max(rgb.pixels.shape) == 128


def test_bad_size_and_closed_service(samples):
    async def main():
        service = ThumbnailService(processes=False)
        with pytest.raises(ValueError):
            await service.thumbnail(samples["rgb"].path, 0)
        await service.aclose()
        with pytest.raises(RuntimeError):
            await service.thumbnail(samples["rgb"].path)

    asyncio.run(main())
    with ThumbnailService(processes=True) as service:  # the synchronous close
        assert service.processes
    assert executor.join_all(10)


def test_threads_against_processes_measured(_session_dir, record_property):
    """The numbers behind processes as the default (printed; the fuller benchmark is in the report).

    Wall time per image, and the CPU time the calling process (the GUI's, in the application)
    spends per image: with threads the decoders run there holding the GIL, with processes only
    the hand-over does. Timing on a shared machine is noisy, so this test asserts only what does
    not depend on the machine's load: every mode gives every thumbnail, and processes leave the
    calling process (nearly) idle.
    """
    paths = make_series(_session_dir / "rle32", 32, side=512, rle_every=1)

    def inline() -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        for path in paths:
            render(path, 64)
        return time.perf_counter() - wall, time.process_time() - cpu

    async def service_run(processes: bool, workers: int) -> tuple[float, float]:
        async with ThumbnailService(processes=processes, workers=workers) as service:
            await collect(service, paths[:2 * workers])  # start and warm the workers, untimed
            wall, cpu = time.perf_counter(), time.process_time()
            got = await collect(service, paths)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            assert len(got) == len(paths) and not any(t.is_placeholder for t in got.values())
            return wall, cpu

    inline()  # warm the decoders in this process
    results = {"in-line": inline()}
    for processes in (False, True):
        for workers in (1, 2):
            results[f"{'processes' if processes else 'threads'} x{workers}"] = asyncio.run(
                service_run(processes, workers))
    per = {k: (wall * 1000 / len(paths), cpu * 1000 / len(paths)) for k, (wall, cpu) in results.items()}
    print(f"\n{len(paths)} RLE 512x512 slices, {os.cpu_count()} cores (ms per image: wall / CPU of the "
          "calling process): " + ", ".join(f"{k} {w:.1f} / {c:.1f}" for k, (w, c) in per.items()))
    for key, (wall, cpu) in per.items():
        record_property(f"ms_per_image:{key}", round(wall, 2))
        record_property(f"caller_cpu_ms_per_image:{key}", round(cpu, 2))
    assert per["processes x2"][1] < per["threads x2"][1] / 2
